"""Replays a Sparse Studio pipeline in PyTorch (written by `sparse-studio export-torch`).

Stages run as the studio's engine runs them (host/runner/executor.ts): per stage the operations
(Freeze, Replace, Unfreeze; Distill sets the loss), the training steps (AdamW as
native/src/adamw.cpp, the LR schedule, global-norm clipping, the data order of the studio),
evaluations, the Gate with its on-fail policy, and a checkpoint. The run folder has the studio's
format (metrics.jsonl, events.jsonl, run.json, pipeline.json, checkpoints/stage-<n>/), so
`sparse-studio watch RUN_DIR` or the studio's Runs view can follow it.

Start it with torchrun, or with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (and LOCAL_RANK) set
by hand. Several ranks split each batch's rows; gradients are averaged with DDP (or FSDP2's
fully_shard on GPUs where torch has it).
"""
import argparse
import copy
import json
import math
import os
import platform
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import masks as M  # noqa: E402
import st_io  # noqa: E402
from data import TokenData  # noqa: E402
from model import HAVE_FLEX, CausalLM, load_state, param_kinds, resolve_config  # noqa: E402

PARAM_KINDS = ["q", "k", "v", "o", "mlp", "norms", "embeddings", "selector"]
LAYER_BASE_KINDS = ["q", "k", "v", "o", "mlp", "norms"]
OUTSIDE_KINDS = ["norms", "embeddings"]


# ------------------------------------------------------------------------------------------
# output in the studio's run format

def js_number(x):
    if isinstance(x, bool) or x is None:
        return x
    if isinstance(x, float):
        if not math.isfinite(x):
            return None
        if x.is_integer() and abs(x) < 1e21:
            return int(x)
    return x


def js(obj):
    """JSON as JavaScript's JSON.stringify writes it (integral floats without '.0', no spaces)."""
    def conv(o):
        if isinstance(o, dict):
            return {k: conv(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [conv(v) for v in o]
        return js_number(o)
    return json.dumps(conv(obj), separators=(",", ":"), ensure_ascii=False)


class RunLog:
    """Rank 0 writes; other ranks keep quiet."""

    def __init__(self, run_dir, plan, active, backend):
        self.dir, self.active = run_dir, active
        self.run_id = os.path.basename(os.path.abspath(run_dir))
        self.metrics_lines = 0
        if not active:
            return
        os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
        with open(os.path.join(run_dir, "pipeline.json"), "w") as f:
            f.write(plan["pipeline_canonical"] + "\n")
        for name in ("events.jsonl", "metrics.jsonl", "system.jsonl"):
            open(os.path.join(run_dir, name), "w").close()
        self.events = open(os.path.join(run_dir, "events.jsonl"), "a")
        self.metrics = open(os.path.join(run_dir, "metrics.jsonl"), "a")
        self.record = {
            "id": self.run_id, "name": plan["pipeline"]["info"]["name"] or self.run_id, "status": "running",
            "startedAt": int(time.time() * 1000), "backend": backend, "threads": torch.get_num_threads(),
            "versions": {"studio": plan["studio_version"], "node": "", "engine": f"torch {torch.__version__}"},
            "hashes": {"pipeline": plan["pipeline_sha256"], "model": plan.get("model_sha256", ""), "data": plan.get("data_sha256", "")},
            "machine": {"platform": sys.platform, "arch": platform.machine(), "cpus": os.cpu_count() or 1,
                        "cpuModel": platform.processor() or "", "totalMemoryBytes": 0},
            "checkpoints": [], "stages": [], "final": {}, "resumes": 0,
        }
        self.write_record()

    def emit(self, kind, **body):
        if not self.active:
            return
        event = {"runId": self.run_id, "time": int(time.time() * 1000), "type": kind, **body}
        self.events.write(js(event) + "\n")
        if kind in ("step", "eval"):
            self.metrics.write(js({"type": kind, **body["metrics"]}) + "\n")
            self.metrics_lines += 1
        self.metrics.flush()
        self.events.flush()
        if kind == "log":
            print(f"[{body['level']}] {body['message']}", flush=True)

    def update(self, **patch):
        if self.active:
            self.record.update(patch)
            self.write_record()

    def write_record(self):
        path = os.path.join(self.dir, "run.json")
        with open(path + ".tmp", "w") as f:
            f.write(json.dumps(self.record, indent=2) + "\n")
        os.replace(path + ".tmp", path)


# ------------------------------------------------------------------------------------------
# model state (core/model-state.ts)

def layer_indices(rng, n, field):
    first, last = rng
    if first < 1 or last < first or last > n:
        raise ValueError(f"{field}: range [{first}, {last}] is outside the model's layers 1-{n}")
    return list(range(first - 1, last))


def initial_state(n):
    return {"layers": [{"attention": "dense", "trainable": list(LAYER_BASE_KINDS)} for _ in range(n)],
            "outside": {"trainable": list(OUTSIDE_KINDS)}, "trainableOps": []}


def node_effect(state, node, overrides):
    """Changes of a Freeze / Replace / Unfreeze node (nodeEffect)."""
    p, kind, n = node["params"], node["kind"], len(state["layers"])
    if kind == "freeze":
        layers = "all" if p["layers"] == "all" else layer_indices(p["layers"], n, f"{node['id']}.layers")
        return trainable_change(layers, list(p["kinds"]), False)
    if kind == "replace":
        layers = layer_indices(p["layers"], n, f"{node['id']}.layers")
        if overrides.get("skipReplace"):
            return []
        mask = p["mask"]
        for _ in range(overrides.get("denserLevels", 0)):
            mask = denser(mask)
        changes = [{"type": "attention", "layer": l, "mask": mask, "by": node["id"]} for l in layers]
        if p["mask"]["selector"] == "indexer":
            changes += trainable_change(layers, ["selector"], True)
        return changes
    if kind == "unfreeze":
        every = layer_indices(p["layers"], n, f"{node['id']}.layers")
        layers = [l for l in every if state["layers"][l]["attention"] == "sparse"] if p["replaced_only"] else every
        layers = [l for l in layers if l not in overrides.get("refrozen", [])]
        changes = trainable_change(layers, [k for k in p["kinds"] if k not in ("embeddings", "selector")], True)
        if "selector" in p["kinds"]:
            changes += trainable_change([l for l in layers if (state["layers"][l].get("mask") or {}).get("selector") == "indexer"], ["selector"], True)
        return changes
    return []


def denser(mask):
    """One level denser (core/sparsity-step.ts): +2 random blocks, or +1 window block without random blocks."""
    m = dict(mask)
    if m["random_blocks"] > 0:
        m["random_blocks"] += 2
    else:
        m["window_blocks"] += 1
    return m


def newly_trainable(before, after):
    """Layers that gained a trainable kind other than the selector (executor.ts newlyTrainable)."""
    return [l for l, s in enumerate(after["layers"])
            if any(k != "selector" and k not in before["layers"][l]["trainable"] for k in s["trainable"])]


def trainable_change(layers, kinds, trainable):
    if (layers != "all" and len(layers) == 0) or len(kinds) == 0:
        return []
    return [{"type": "trainable", "selection": {"layers": layers, "kinds": kinds}, "trainable": trainable}]


def apply_change(state, change, stage):
    if change["type"] == "attention":
        layer = state["layers"][change["layer"]]
        if change["mask"]:
            layer["attention"], layer["mask"] = "sparse", copy.deepcopy(change["mask"])
            if change.get("by") is not None:
                layer["replacedBy"] = change["by"]
        else:
            layer["attention"] = "dense"
            layer.pop("mask", None)
            layer.pop("replacedBy", None)
        if (layer.get("mask") or {}).get("selector") != "indexer":
            layer["trainable"] = [k for k in layer["trainable"] if k != "selector"]
        return
    sel, on = change["selection"], change["trainable"]
    targets = range(len(state["layers"])) if sel["layers"] == "all" else sel["layers"]
    for i in targets:
        layer = state["layers"][i]
        has = lambda k: k != "embeddings" and (k != "selector" or (layer.get("mask") or {}).get("selector") == "indexer")
        if on:
            kinds = set(layer["trainable"]) | {k for k in sel["kinds"] if has(k)}
            layer["trainable"] = [k for k in PARAM_KINDS if k in kinds]
        else:
            layer["trainable"] = [k for k in layer["trainable"] if k not in sel["kinds"]]
    if sel["layers"] == "all":
        out = state["outside"]["trainable"]
        state["outside"]["trainable"] = (out + [k for k in sel["kinds"] if k in OUTSIDE_KINDS and k not in out]) if on \
            else [k for k in out if k not in sel["kinds"]]
    state["trainableOps"].append({"selection": sel, "trainable": on, "stage": stage})


def sync_requires_grad(model, state):
    for name, p in model.named_parameters():
        layer, kind = param_kinds(name)
        kinds = state["outside"]["trainable"] if layer is None else state["layers"][layer]["trainable"]
        p.requires_grad_(kind in kinds)


# ------------------------------------------------------------------------------------------
# schedule, gate, plateau (host/runner/lr-schedule.ts, gate.ts, plateau.ts)

def learning_rate(p, step, mult=1.0):
    peak = p["lr"] * mult
    steps = max(1, p["steps"])

    def cos_factor(s, total):
        if total <= 0:
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * (min(s, total) / total)))

    if p["schedule"] == "constant":
        return peak
    if p["schedule"] == "cosine":
        return peak * cos_factor(step, steps)
    warm = min(max(0, p["warmup_steps"]), steps)
    if step < warm:
        return peak * (step + 1) / warm
    return peak * cos_factor(step - warm, steps - warm)


def lr_scale_of(p):
    """Per-kind learning rates as multipliers of lr (host/runner/lr-schedule.ts lrScaleOf)."""
    scale = {}
    if p.get("lr_selector") is not None:
        scale["selector"] = p["lr_selector"] / p["lr"]
    if p.get("lr_attention") is not None:
        for k in ("q", "k", "v", "o"):
            scale[k] = p["lr_attention"] / p["lr"]
    return scale


def seq_len_at(curriculum, step):
    seq = curriculum[0]["seq_len"]
    for c in curriculum:
        if c["from_step"] <= step:
            seq = c["seq_len"]
    return seq


def judge_gate(params, metrics, start_loss, stage, node, attempt):
    checks = []
    for c in params["checks"]:
        if c["metric"] == "loss_increase":
            v = (metrics["loss"] - start_loss) / start_loss if start_loss > 0 else 0.0
        else:
            # speedup is measured by the studio's engine only: unmeasured, the check fails.
            v = metrics.get(c["metric"], math.nan)
        ok = math.isfinite(v) and {"<": v < c["threshold"], "<=": v <= c["threshold"], ">": v > c["threshold"], ">=": v >= c["threshold"]}[c["op"]]
        # gate.ts checkState: a sparse-only metric without sparse layers is vacuous, not a pass.
        dens = metrics["per_layer"]["density"]
        vacuous = c["metric"] in ("attn_kl", "attn_recall", "out_cos") and len(dens) > 0 and all(d is None for d in dens)
        state = "vacuous" if vacuous else ("passed" if ok else "failed")
        checks.append({"metric": c["metric"], "op": c["op"], "threshold": c["threshold"], "value": v, "passed": state == "passed", "state": state})
    passed = all(c["state"] == "passed" for c in checks)
    action = "none"
    if not passed:
        retries, on_fail = attempt - 1, params["on_fail"]
        if on_fail in ("decay_lr_retry", "refreeze"):
            action = "stop" if retries >= params["max_retries"] else on_fail
        elif on_fail == "rollback_sparsity":
            action = "continue" if retries > params["max_retries"] else on_fail
        else:
            action = on_fail
    return {"stage": stage, "node": node, "passed": passed, "checks": checks, "action": action, "attempt": attempt}


class Plateau:
    def __init__(self, patience):
        self.patience, self.best, self.since = patience, math.inf, 0

    def observe(self, loss):
        if self.patience <= 0:
            return False
        if loss < self.best:
            self.best, self.since = loss, 0
            return False
        self.since += 1
        if self.since < self.patience:
            return False
        self.since = 0
        return True


def fmt(x):
    return f"{x:.4g}" if math.isfinite(x) else str(x)


# ------------------------------------------------------------------------------------------
# the run

def local(t):
    return t.to_local() if hasattr(t, "to_local") else t


class Runner:
    def __init__(self, args):
        self.args = args
        with open(os.path.join(HERE, "plan.json")) as f:
            self.plan = json.load(f)
        self.pipeline = self.plan["pipeline"]
        self.nodes = {n["id"]: n for n in self.pipeline["nodes"]}
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        want_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
        self.device = torch.device(f"cuda:{local_rank}" if want_cuda else "cpu")
        if want_cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1:
            dist.init_process_group("nccl" if want_cuda else "gloo", init_method="env://", rank=self.rank, world_size=self.world)
        torch.manual_seed(self.pipeline["seed"])
        precisions = [self.nodes[s["train"]]["params"]["precision"] for s in self.plan["stages"]]
        self.autocast = torch.bfloat16 if (want_cuda and precisions and precisions[0] == "bf16") else None
        self.fsdp = None
        if want_cuda and self.world > 1 and not args.ddp:
            try:
                from torch.distributed.fsdp import fully_shard  # torch >= 2.6
                self.fsdp = fully_shard
            except Exception:
                try:
                    from torch.distributed._composable.fsdp import fully_shard  # torch 2.4-2.5
                    self.fsdp = fully_shard
                except Exception:
                    self.fsdp = None
        mode = "fsdp2" if self.fsdp else ("ddp" if self.world > 1 else "single")
        backend = f"torch-{self.device.type}"
        self.log_out = RunLog(args.out, self.plan, self.rank == 0, backend)
        model_dir = args.model or self.plan["model_dir"]
        with open(os.path.join(model_dir, "config.json")) as f:
            self.raw_config = json.load(f)
        self.config = resolve_config(self.raw_config)
        self.base = st_io.read_dir(model_dir)
        self.teacher = self.fresh_model()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.student = self.fresh_model()
        self.data = {}
        self.state = initial_state(self.config["num_layers"])
        self.opt = {}
        self.global_step = 0
        self.last_lr = 0.0
        self.last_checkpoint = None
        self.summaries = []
        self.final = {}
        self.mask_cache = {}
        self.wrapped = self.student
        if self.fsdp:
            for layer in self.student.model.layers:
                self.fsdp(layer)
            self.fsdp(self.student)
        self.log("info", f"torch {torch.__version__} on {self.device} ({mode}, world {self.world}); attention: "
                 f"{'FlexAttention BlockMask' if HAVE_FLEX and want_cuda else 'masked softmax'}"
                 f"{'; bf16 autocast' if self.autocast else ''}")

    # -------------------------------------------------------------------- helpers

    def fresh_model(self):
        m = CausalLM(self.config)
        load_state(m, self.base)
        return m.to(self.device)

    def log(self, level, message):
        self.log_out.emit("log", level=level, message=message)

    def dataset(self, node_id):
        if node_id not in self.data:
            self.data[node_id] = TokenData(os.path.join(HERE, self.plan["datasets"][node_id]))
        return self.data[node_id]

    def layer_mask(self, l, T, qk=None):
        """Mask dict of a layer for a (local) batch, or None when dense; keep is (B or 1, mh, nb, nb)."""
        spec = (self.state["layers"][l].get("mask") if self.state["layers"][l]["attention"] == "sparse" else None)
        if spec is None:
            return None
        c = self.config
        if M.is_dynamic(spec, T):
            if spec["selector"] != "pooled":
                raise NotImplementedError(f"layer {l + 1}: selector '{spec['selector']}' is not supported by this export")
            q, k = qk
            keeps = [M.build_block_mask(spec, T, c["heads"], c["kv_heads"], l,
                                        M.pooled_block_scores(q[b].detach().float().cpu(), k[b].detach().float().cpu(), spec, spec["block_size"]))
                     for b in range(q.shape[0])]
            return {"keep": torch.stack(keeps), "block_size": spec["block_size"], "flex": None}
        key = (json.dumps(spec, sort_keys=True), l, T)
        if key not in self.mask_cache:
            keep = M.build_block_mask(spec, T, c["heads"], c["kv_heads"], l)
            self.mask_cache[key] = {"keep": keep[None], "block_size": spec["block_size"], "flex": self.flex_mask(keep, spec, T)}
        return self.mask_cache[key]

    def flex_mask(self, keep, spec, T):
        if not (HAVE_FLEX and self.device.type == "cuda"):
            return None
        from torch.nn.attention.flex_attention import BlockMask
        H = self.config["heads"]
        k = keep.repeat_interleave(H // keep.shape[0], 0).to(self.device)
        nb = k.shape[-1]
        num = k.sum(-1).int()
        order = torch.argsort((~k).int() * nb + torch.arange(nb, device=self.device), -1).int()
        causal = lambda b, h, q_idx, kv_idx: q_idx >= kv_idx
        return BlockMask.from_kv_blocks(num[None], order[None], BLOCK_SIZE=spec["block_size"], mask_mod=causal, seq_lengths=(T, T))

    def masks_for(self, ids):
        """Per-layer masks; dynamic (pooled) masks need the layer's q and k, so they come from a probe pass."""
        T = ids.shape[1]
        L = self.config["num_layers"]
        dynamic = any(self.state["layers"][l]["attention"] == "sparse" and M.is_dynamic(self.state["layers"][l]["mask"], T) for l in range(L))
        if not dynamic:
            return [self.layer_mask(l, T) for l in range(L)]
        # Layer by layer: a layer's q/k depend only on the layers below it.
        masks = [None] * L
        with torch.no_grad():
            for l in range(L):
                spec = self.state["layers"][l].get("mask") if self.state["layers"][l]["attention"] == "sparse" else None
                if spec is not None and M.is_dynamic(spec, T):
                    _, qk, _ = self.student_module()(ids, masks[:l] + [None] * (L - l))
                    masks[l] = self.layer_mask(l, T, qk[l])
                else:
                    masks[l] = self.layer_mask(l, T)
        return masks

    def student_module(self):
        return self.student

    def rows(self, B):
        """This rank's rows of a B-row batch and its share of the batch."""
        per, extra = divmod(B, self.world)
        start = self.rank * per + min(self.rank, extra)
        n = per + (1 if self.rank < extra else 0)
        return start, n

    def all_sum(self, t):
        if self.world > 1:
            dist.all_reduce(t)
        return t

    def autocast_ctx(self):
        if self.autocast is not None:
            return torch.autocast("cuda", dtype=self.autocast)
        return torch.autocast("cpu", enabled=False)

    # -------------------------------------------------------------------- losses

    @staticmethod
    def attn_scores(q, k):
        group = q.shape[1] // k.shape[1]
        return (q @ k.repeat_interleave(group, 1).transpose(-1, -2)) / math.sqrt(q.shape[-1])

    def attn_kl(self, qs, ks, qt, kt, mask, fp64=False):
        """Row KL(student || teacher) (B, H, T) and teacher recall (B, H, T) of one replaced layer."""
        from model import allowed
        T, H = qs.shape[2], qs.shape[1]
        if fp64:
            qs, ks, qt, kt = qs.double(), ks.double(), qt.double(), kt.double()
        else:
            qs, ks, qt, kt = qs.float(), ks.float(), qt.float(), kt.float()
        allow = allowed(mask, T, H, qs.device)
        causal = allowed(None, T, H, qs.device)
        logp_s = torch.log_softmax(self.attn_scores(qs, ks).masked_fill(~allow, float("-inf")), -1)
        logp_t = torch.log_softmax(self.attn_scores(qt, kt).masked_fill(~causal, float("-inf")), -1)
        diff = torch.where(allow, logp_s - logp_t, torch.zeros((), dtype=logp_s.dtype, device=qs.device))
        kl = (logp_s.exp() * diff).sum(-1)
        recall = torch.where(allow, logp_t.exp(), torch.zeros((), dtype=logp_t.dtype, device=qs.device)).sum(-1)
        return kl, recall

    def attn_entropy(self, q, k, mask):
        """Mean over (B, H, T) of the entropy (nats) of one layer's attention under its mask."""
        from model import allowed
        T, H = q.shape[2], q.shape[1]
        allow = allowed(mask, T, H, q.device)
        logp = torch.log_softmax(self.attn_scores(q.float(), k.float()).masked_fill(~allow, float("-inf")), -1)
        # Masked keys: p = 0 and log p -> 0, so they add nothing and pass no NaN back.
        return -(logp.exp() * logp.masked_fill(~allow, 0.0)).sum(-1).mean()

    def step_losses(self, tokens, distill, entropy_weight=0.0):
        """Local losses of this rank's rows; each term is its share of the global mean."""
        ids, targets = tokens[:, :-1].to(self.device), tokens[:, 1:].to(self.device)
        masks = self.masks_for(ids)
        sparse = [l for l in range(self.config["num_layers"]) if masks[l] is not None]
        with self.autocast_ctx():
            hidden, qk, logits = self.wrapped(ids, masks)
        V = logits.shape[-1]
        ce = F.cross_entropy(logits.float().reshape(-1, V), targets.reshape(-1))
        zero = torch.zeros((), device=self.device)
        terms = {"task": ce, "attn_kl": zero, "logit_kl": zero, "hidden_mse": zero}
        if distill:
            with torch.no_grad(), self.autocast_ctx():
                hidden_t, qk_t, logits_t = self.teacher(ids, None)
            terms["hidden_mse"] = ((hidden.float() - hidden_t.float()) ** 2).mean()
            if distill["logit_kl"] != 0:
                tau = distill["temperature"]
                lt = torch.log_softmax(logits_t.float().reshape(-1, V) / tau, -1)
                ls = torch.log_softmax(logits.float().reshape(-1, V) / tau, -1)
                terms["logit_kl"] = tau * tau * (lt.exp() * (lt - ls)).sum(-1).mean()
            if sparse:
                kls = [self.attn_kl(qk[l][0], qk[l][1], qk_t[l][0], qk_t[l][1], masks[l])[0].mean() for l in sparse]
                terms["attn_kl"] = sum(kls) / len(kls)
            w = distill
            loss = w["task"] * terms["task"] + w["attn_kl"] * terms["attn_kl"] + w["logit_kl"] * terms["logit_kl"] + w["hidden_mse"] * terms["hidden_mse"]
        else:
            loss = ce
        if entropy_weight > 0:
            ents = [self.attn_entropy(qk[l][0], qk[l][1], masks[l]) for l in range(len(qk))]
            terms["attn_entropy"] = sum(ents) / len(ents)
            loss = loss + entropy_weight * terms["attn_entropy"]
        dens = [sum(M.density(k) for k in masks[l]["keep"]) / masks[l]["keep"].shape[0] for l in sparse]
        density = sum(dens) / len(dens) if dens else 1.0
        return loss, terms, density

    # -------------------------------------------------------------------- optimiser

    def train_step(self, tokens, distill, lr, p):
        B = tokens.shape[0]
        start, n = self.rows(B)
        share = n / B
        for prm in self.student.parameters():
            prm.grad = None
        entropy_weight = p.get("attn_entropy_weight") or 0.0
        loss, terms, density = self.step_losses(tokens[start:start + n], distill, entropy_weight)
        # DDP / FSDP average gradients over ranks: scale so the average is the global batch mean.
        (loss * share * self.world).backward()
        stats = torch.tensor([loss.item() * share, terms["task"].item() * share, terms["attn_kl"].item() * share,
                              terms["logit_kl"].item() * share, terms["hidden_mse"].item() * share,
                              terms["attn_entropy"].item() * share if entropy_weight > 0 else 0.0], dtype=torch.float64)
        stats = self.all_sum(stats).tolist()
        named = [(name, prm) for name, prm in self.student.named_parameters() if prm.requires_grad]
        ss = torch.zeros((), dtype=torch.float64, device=self.device)
        for _, prm in named:
            if prm.grad is not None:
                ss += local(prm.grad).double().pow(2).sum()
        if self.fsdp:
            ss = self.all_sum(ss)
        grad_norm = math.sqrt(ss.item())
        if not (math.isfinite(stats[0]) and math.isfinite(grad_norm)):
            raise FloatingPointError(f"training diverged: loss {stats[0]}, grad norm {grad_norm} (weights left unchanged)")
        clip = p["grad_clip"]
        scale = clip / (grad_norm + 1e-6) if clip > 0 and grad_norm > clip else 1.0
        f32 = lambda x: float(torch.tensor(x, dtype=torch.float32))
        b1, b2, eps = p["beta1"], p["beta2"], p["eps"]
        scales = lr_scale_of(p)
        base_lr = lr
        with torch.no_grad():
            for name, prm in named:
                # The engine multiplies in fp32: lr * lr_scale[kind].
                lr = f32(f32(base_lr) * f32(scales.get(param_kinds(name)[1], 1.0))) if scales else base_lr
                st = self.opt.setdefault(name, {"step": 0, "m": torch.zeros_like(local(prm)), "v": torch.zeros_like(local(prm))})
                st["step"] += 1
                wd = p["weight_decay"] if prm.dim() >= 2 else 0.0
                bc1 = 1.0 - b1 ** st["step"]
                bc2 = 1.0 - b2 ** st["step"]
                w = local(prm)
                g = local(prm.grad) * f32(scale) if prm.grad is not None else torch.zeros_like(w)
                w.mul_(f32(1.0 - f32(lr) * f32(wd)))
                st["m"].add_((g - st["m"]) * f32(1.0 - b1))
                st["v"].mul_(f32(b2)).add_(g * g * f32(1.0 - b2))
                w.sub_(f32(lr / bc1) * st["m"] / (st["v"].sqrt() / f32(math.sqrt(bc2)) + f32(eps)))
        out = {"loss": stats[0], "task_loss": stats[1], "attn_kl_loss": stats[2], "logit_kl_loss": stats[3],
               "hidden_mse_loss": stats[4], "grad_norm": grad_norm, "density": density}
        if entropy_weight > 0:
            out["attn_entropy"] = stats[5]
        return out

    # -------------------------------------------------------------------- evaluation

    def evaluate(self, data, batches, shape, stage):
        L = self.config["num_layers"]
        acc = torch.zeros(4 + 4 * L, dtype=torch.float64)
        present = torch.zeros(L, dtype=torch.float64)
        with torch.no_grad(), self.autocast_ctx():
            for i in range(self.rank, batches, self.world):
                tokens = data.validation_batch(i, shape["batch"], shape["seq"])
                ids, targets = tokens[:, :-1].to(self.device), tokens[:, 1:].to(self.device)
                masks = self.masks_for(ids)
                hs, qks, zs = self.student(ids, masks)
                ht, qkt, zt = self.teacher(ids, None)
                V = zs.shape[-1]
                ls = torch.log_softmax(zs.double().reshape(-1, V), -1)
                lt = torch.log_softmax(zt.double().reshape(-1, V), -1)
                t = targets.reshape(-1)
                acc[0] += -ls.gather(1, t[:, None]).mean().item()
                acc[1] += -lt.gather(1, t[:, None]).mean().item()
                acc[2] += (lt.exp() * (lt - ls)).sum(-1).mean().item()
                a, b = hs.double().reshape(-1, hs.shape[-1]), ht.double().reshape(-1, ht.shape[-1])
                cos = (a * b).sum(-1) / torch.clamp(torch.sqrt((a * a).sum(-1) * (b * b).sum(-1)), min=1e-12)
                acc[3] += cos.mean().item()
                for l in range(L):
                    if masks[l] is None:
                        continue
                    kl, rec = self.attn_kl(qks[l][0], qks[l][1], qkt[l][0], qkt[l][1], masks[l], fp64=True)
                    acc[4 + l] += kl.clamp(min=0).mean().item()
                    acc[4 + L + l] += rec.mean().item()
                    acc[4 + 2 * L + l] += sum(M.density(k) for k in masks[l]["keep"]) / masks[l]["keep"].shape[0]
                    acc[4 + 3 * L + l] += sum(M.flops_saved(k, shape["seq"], masks[l]["block_size"]) for k in masks[l]["keep"]) / masks[l]["keep"].shape[0]
                    present[l] = 1
        acc = (self.all_sum(acc) / batches).tolist()
        present = self.all_sum(present).tolist()
        per = lambda off: [acc[off + l] if present[l] > 0 else None for l in range(L)]
        kl_l, rec_l, den_l, fs_l = per(4), per(4 + L), per(4 + 2 * L), per(4 + 3 * L)
        replaced = [d for d in den_l if d is not None]
        mean = lambda xs: sum(x for x in xs if x is not None) / len([x for x in xs if x is not None]) if replaced else 0.0
        density = sum(replaced) / len(replaced) if replaced else 1.0
        loss, loss_t = acc[0], acc[1]
        return {
            "stage": stage, "step": self.global_step, "loss": loss, "ppl": math.exp(loss), "ppl_teacher": math.exp(loss_t),
            "ppl_ratio": math.exp(loss_t) / math.exp(loss), "attn_kl": mean(kl_l),
            "attn_recall": mean(rec_l) if replaced else 1.0, "logit_kl": acc[2], "out_cos": acc[3],
            "density": density, "sparsity": 1 - density,
            "attn_flops_saved": sum(1 - d for d in replaced) / L if L else 0.0,
            "flops_saved": sum(f for f in fs_l if f is not None) / L if L else 0.0,
            "per_layer": {"attn_kl": kl_l, "attn_recall": rec_l, "density": den_l, "flops_saved": fs_l},
        }

    # -------------------------------------------------------------------- snapshots and checkpoints

    def snapshot(self):
        return {"weights": {k: local(v).detach().clone() for k, v in self.student.state_dict().items()},
                "opt": copy.deepcopy(self.opt), "state": copy.deepcopy(self.state)}

    def restore(self, snap):
        with torch.no_grad():
            for k, v in self.student.state_dict().items():
                local(v).copy_(snap["weights"][k])
        self.opt = copy.deepcopy(snap["opt"])
        self.state = copy.deepcopy(snap["state"])

    def full_weights(self):
        out = {}
        for name, prm in self.student.named_parameters():
            t = prm.full_tensor() if hasattr(prm, "full_tensor") else prm
            out[name] = t.detach().float().cpu()
        return out

    def write_checkpoint(self, stage):
        weights = self.full_weights()
        rel = f"checkpoints/stage-{stage}"
        if self.rank == 0:
            d = os.path.join(self.args.out, rel)
            os.makedirs(os.path.join(d, "model"), exist_ok=True)
            with open(os.path.join(d, "model", "config.json"), "w") as f:
                json.dump(self.raw_config, f, indent=2)
            st_io.write_file(os.path.join(d, "model", "model.safetensors"), weights)
            torch.save({"step": {k: v["step"] for k, v in self.opt.items()},
                        "m": {k: v["m"].cpu() for k, v in self.opt.items()},
                        "v": {k: v["v"].cpu() for k, v in self.opt.items()}}, os.path.join(d, "optimizer.pt"))
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"format": "sparse-studio-checkpoint/2", "stage": stage, "step": self.global_step,
                           "lr": self.last_lr, "modelState": self.state}, f, indent=2)
            self.log_out.record["checkpoints"].append({"stage": stage, "path": rel, "step": self.global_step, "metricsLines": self.log_out.metrics_lines})
            self.log_out.write_record()
        if self.world > 1:
            dist.barrier()
        return rel

    def dump_masks(self, stage, T):
        """masks/stage-<n>.json: the static masks in force after the stage's operations (kv lists per mask head)."""
        if self.rank != 0:
            return
        out = {}
        for l, layer in enumerate(self.state["layers"]):
            spec = layer.get("mask") if layer["attention"] == "sparse" else None
            if spec is None or M.is_dynamic(spec, T):
                continue
            out[str(l)] = {"seq": T, "spec": spec, "kv": M.kept_lists(self.layer_mask(l, T)["keep"][0])}
        os.makedirs(os.path.join(self.args.out, "masks"), exist_ok=True)
        with open(os.path.join(self.args.out, "masks", f"stage-{stage}.json"), "w") as f:
            json.dump(out, f)

    # -------------------------------------------------------------------- stages

    def apply_op(self, node, stage, overrides):
        kind = node["kind"]
        if kind == "distill":
            p = node["params"]
            self.log("info", f"{node['id']}: distillation from the dense base (task {p['task_weight']}, attn_kl {p['attn_kl_weight']}, logit_kl {p['logit_kl_weight']}, hidden_mse {p['hidden_mse_weight']})")
            return
        if kind == "export":
            self.log("warn", f"{node['id']}: Export is done by the studio; the stage checkpoints hold the weights (checkpoints/stage-<n>/model)")
            return
        for change in node_effect(self.state, node, overrides):
            if change["type"] == "attention" and change["mask"] and change["mask"]["selector"] == "indexer":
                raise NotImplementedError(f"{node['id']}: the indexer selector is not supported by this export (use pooled or none)")
            apply_change(self.state, change, stage)
        self.log("info", f"{node['id']}: applied")

    def wrap(self):
        sync_requires_grad(self.student, self.state)
        if self.world > 1 and not self.fsdp:
            from torch.nn.parallel import DistributedDataParallel as DDP
            self.wrapped = DDP(self.student, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        else:
            self.wrapped = self.student

    def run_stage(self, stage):
        train = self.nodes[stage["train"]]
        p = train["params"]
        gate = self.nodes[stage["gate"]] if stage.get("gate") else None
        data = self.dataset(stage["dataset"])
        gate_ds = (stage.get("gateDataset") or stage["dataset"])
        gate_data = self.dataset(gate_ds) if gate else data
        d = self.nodes[stage["distill"]]["params"] if stage.get("distill") else None
        distill = {"task": d["task_weight"], "attn_kl": d["attn_kl_weight"], "logit_kl": d["logit_kl_weight"],
                   "hidden_mse": d["hidden_mse_weight"], "temperature": d["temperature"]} if d else None
        shape = {"batch": p["batch_size"], "seq": max(c["seq_len"] for c in p["curriculum"])}
        start = self.snapshot()
        start_loss = math.nan
        if gate and any(c["metric"] == "loss_increase" for c in gate["params"]["checks"]):
            start_loss = self.evaluate(gate_data, gate["params"]["eval_batches"], shape, stage["index"])["loss"]
            self.log("info", f"{stage['name']}: validation loss at stage start {start_loss:.4f}")
        lr_mult, overrides, unfrozen = 1.0, {}, []
        steps = p["steps"] if self.args.max_steps_per_stage is None else min(p["steps"], self.args.max_steps_per_stage)
        attempt = 0
        while True:
            attempt += 1
            self.log_out.emit("stage_start", stage=stage["index"], node=train["id"], name=stage["name"], steps=steps)
            if attempt > 1:
                self.restore(start)
            before = copy.deepcopy(self.state)
            for op in stage["ops"]:
                self.apply_op(self.nodes[op], stage["index"], overrides)
            if attempt == 1:
                unfrozen = newly_trainable(before, self.state)
            self.wrap()
            if attempt == 1:
                self.dump_masks(stage["index"], shape["seq"])
            ok, last, message = self.train(stage, train, p, steps, distill, lr_mult, data, shape)
            if not ok:
                self.log_out.emit("stage_end", stage=stage["index"], node=train["id"], status="failed")
                self.summarize(stage, "failed", attempt, last or {})
                return False, message
            metrics, status = last, "done"
            if gate:
                gp = gate["params"]
                reuse = metrics and metrics["step"] == self.global_step and gate_ds == stage["dataset"] and gp["eval_batches"] == p["eval_batches"]
                if not reuse:
                    metrics = self.evaluate(gate_data, gp["eval_batches"], shape, stage["index"])
                    self.log_out.emit("eval", metrics=metrics)
                    self.final = metrics
                verdict = judge_gate(gp, metrics, metrics["loss"] if math.isnan(start_loss) else start_loss, stage["index"], gate["id"], attempt)
                self.log_out.emit("gate", verdict=verdict)
                failed = ", ".join(f"{c['metric']} vacuous (no sparse layers)" if c["state"] == "vacuous" else f"{c['metric']} {fmt(c['value'])} (needs {c['op']} {c['threshold']})"
                                   for c in verdict["checks"] if not c["passed"])
                status = "passed" if verdict["passed"] else "failed"
                if not verdict["passed"] and verdict["action"] != "continue":
                    self.log_out.emit("stage_end", stage=stage["index"], node=train["id"], status="failed")
                    if verdict["action"] == "stop":
                        self.summarize(stage, "failed", attempt, metrics)
                        message = f"{gate['id']}: gate failed after {attempt} attempt{'s' if attempt > 1 else ''}: {failed}"
                        self.log("error", message)
                        return False, message
                    action = verdict["action"]
                    if action == "decay_lr_retry":
                        lr_mult *= gp["lr_factor"]
                    elif action == "rollback_sparsity":
                        # gate-retry.ts: retry k is k levels denser; after max_retries, the previous masks.
                        if attempt <= gp["max_retries"]:
                            overrides = {**overrides, "denserLevels": attempt, "skipReplace": False}
                        else:
                            overrides = {**overrides, "denserLevels": 0, "skipReplace": True}
                    else:
                        # refreeze: the layers the stage unfroze stay frozen, deepest first, one more per retry.
                        overrides = {**overrides, "refrozen": sorted(unfrozen, reverse=True)[:attempt]}
                    self.log("warn", f"{gate['id']}: gate failed ({failed}); {action}, retry {attempt} of {gp['max_retries']}")
                    continue
                if not verdict["passed"]:
                    self.log("warn", f"{gate['id']}: gate failed ({failed}); continuing as configured")
            path = self.write_checkpoint(stage["index"])
            self.last_checkpoint = path
            self.log_out.emit("checkpoint", stage=stage["index"], path=path)
            self.summarize(stage, status, attempt, metrics or {})
            self.log_out.emit("stage_end", stage=stage["index"], node=train["id"], status=status)
            return True, None

    def train(self, stage, train, p, steps, distill, lr_mult, data, shape):
        plateau = Plateau(p["plateau_patience"])
        plateau_mult = 1.0
        last = None
        for i in range(steps):
            seq = seq_len_at(p["curriculum"], i)
            lr = learning_rate(p, i, lr_mult * plateau_mult)
            batch = data.train_batch(self.global_step, p["batch_size"], seq)
            try:
                r = self.train_step(batch, distill, lr, p)
            except FloatingPointError as e:
                kept = f"the last good checkpoint {self.last_checkpoint} is kept" if self.last_checkpoint else "no stage had completed, so there is no checkpoint"
                message = f"{train['id']}: {e} at stage step {i} (global step {self.global_step}, lr {lr}); stage stopped, {kept}"
                self.log("error", message)
                return False, last, message
            self.last_lr = lr
            self.log_out.emit("step", metrics={
                "stage": stage["index"], "step": self.global_step, "stage_step": i, "loss": r["loss"], "task_loss": r["task_loss"],
                "attn_kl_loss": r["attn_kl_loss"], "logit_kl_loss": r["logit_kl_loss"], "hidden_mse_loss": r["hidden_mse_loss"],
                "lr": lr, "grad_norm": r["grad_norm"], "tokens": p["batch_size"] * seq, "density": r["density"], "seq_len": seq,
                **({"attn_entropy": r["attn_entropy"]} if "attn_entropy" in r else {})})
            self.global_step += 1
            at_end = i == steps - 1
            if not (at_end or (p["eval_every"] > 0 and (i + 1) % p["eval_every"] == 0)):
                continue
            last = self.evaluate(data, p["eval_batches"], shape, stage["index"])
            self.log_out.emit("eval", metrics=last)
            self.final = last
            if not at_end and plateau.observe(last["loss"]):
                if p["plateau_action"] == "decay_lr":
                    plateau_mult *= p["plateau_factor"]
                    self.log("warn", f"{train['id']}: plateau; LR x{p['plateau_factor']}")
                else:
                    self.step_back_sparsity(stage)
        return True, last, None

    def step_back_sparsity(self, stage):
        replaced = [self.nodes[o] for o in stage["ops"] if self.nodes[o]["kind"] == "replace"]
        layers = sorted({l for r in replaced for l in range(r["params"]["layers"][0] - 1, r["params"]["layers"][1]) if self.state["layers"][l].get("mask")})
        if not layers:
            layers = [l for l, s in enumerate(self.state["layers"]) if s.get("mask")]
        for l in layers:
            apply_change(self.state, {"type": "attention", "layer": l, "mask": denser(self.state["layers"][l]["mask"])}, stage["index"])
        self.log("warn", f"plateau: stepped sparsity back on {len(layers)} layer(s)")

    def summarize(self, stage, status, attempts, metrics):
        summary = {"stage": stage["index"], "node": stage["train"], "name": stage["name"], "status": status, "attempts": attempts,
                   "metrics": {k: v for k, v in metrics.items() if k != "per_layer"}}
        self.summaries = [s for s in self.summaries if s["stage"] != stage["index"]] + [summary]
        self.log_out.update(stages=self.summaries)

    def execute(self):
        self.log_out.emit("status", status="running")
        status, message = "completed", None
        try:
            for stage in self.plan["stages"]:
                ok, message = self.run_stage(stage)
                if not ok:
                    status = "failed"
                    break
            else:
                for op in self.plan["trailing"]:
                    self.apply_op(self.nodes[op], len(self.plan["stages"]), {})
        except Exception as e:  # one clear line, the run marked failed
            status, message = "failed", f"{type(e).__name__}: {e}"
            self.log("error", message)
        final = {k: v for k, v in self.final.items() if k != "per_layer"}
        self.log_out.emit("status", status=status, **({"message": message} if message else {}))
        self.log_out.emit("summary", status=status, runDir=os.path.abspath(self.args.out), stages=self.summaries, final=final)
        self.log_out.update(status=status, endedAt=int(time.time() * 1000), exitReason=status, final=final,
                            **({"message": message} if message else {}))
        if self.world > 1:
            dist.barrier()
            dist.destroy_process_group()
        return 0 if status == "completed" else 1


def main():
    ap = argparse.ArgumentParser(description="Replay a Sparse Studio pipeline in PyTorch")
    ap.add_argument("--out", required=True, help="run folder to write (the studio's run format)")
    ap.add_argument("--max-steps-per-stage", type=int, default=None, help="cap each stage's steps (smoke tests)")
    ap.add_argument("--model", default=None, help="base model directory (default: the one named in plan.json)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--ddp", action="store_true", help="use DDP even where FSDP2 is available")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads per rank")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.exit(Runner(args).execute())


if __name__ == "__main__":
    main()
