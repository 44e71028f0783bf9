"""Writes golden fixtures from Hugging Face transformers for tiny Llama and Qwen3 models:
config.json + model.safetensors + golden.json (input ids, logits of the first 4 positions,
mean next-token loss). The CPU engine is checked against them in CI once they are committed
(native/test/golden/<arch>/). MiniCPM needs trust_remote_code (its modelling file is not in
transformers), so it is checked against our own TypeScript reference instead."""
import importlib.util
import json
import os
import sys

# Both are needed; say which is missing (device-check.sh lists it among the skipped steps, exit 3)
# rather than a bare ImportError. Qwen3Config needs transformers >= 4.51.
missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
if missing:
    print(f"make_golden: needs {' and '.join(missing)} (pip install {' '.join(missing)}); no fixtures written", file=sys.stderr)
    sys.exit(3)
import torch  # noqa: E402
try:
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config  # noqa: E402
except ImportError as e:
    import transformers
    print(f"make_golden: transformers {transformers.__version__} lacks what this needs ({e}); Qwen3 needs >= 4.51", file=sys.stderr)
    sys.exit(3)

out_root = sys.argv[1] if len(sys.argv) > 1 else "golden"
torch.manual_seed(0)
common = dict(vocab_size=97, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=10000.0)
for name, cfg in {"llama": LlamaConfig(**common, tie_word_embeddings=False),
                  "qwen3": Qwen3Config(**common, head_dim=16, tie_word_embeddings=True)}.items():
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32).eval()
    path = os.path.join(out_root, name)
    model.save_pretrained(path, safe_serialization=True)
    ids = torch.randint(0, cfg.vocab_size, (1, 33))
    with torch.no_grad():
        out = model(ids, labels=ids)
    json.dump({"input_ids": ids[0].tolist(), "loss": out.loss.item(), "logits_head": out.logits[0, :4].tolist()},
              open(os.path.join(path, "golden.json"), "w"))
    print(name, "loss", out.loss.item())
