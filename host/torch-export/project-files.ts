// The text files of an exported PyTorch project: launch.sh, requirements.txt, README.md.
import type { Pipeline } from '../../core/schema';

export const REQUIREMENTS = `# PyTorch is the only dependency. FlexAttention needs torch >= 2.5, fully_shard (FSDP2) >= 2.4;
# older versions (>= 1.13) run masked softmax attention and DDP.
torch>=1.13
`;

export function launchScript(): string {
  return `#!/usr/bin/env bash
# Launches train.py. Examples:
#   ./launch.sh                                   one process (CPU or one GPU)
#   NPROC=8 ./launch.sh                           torchrun, 8 processes on this node
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 NPROC=8 ./launch.sh   first of two nodes
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 NPROC=8 ./launch.sh   second node
# Extra arguments go to train.py (default --out runs/torch-run).
set -euo pipefail
cd "$(dirname "$0")"
ARGS=("$@")
[ \${#ARGS[@]} -eq 0 ] && ARGS=(--out runs/torch-run)
NPROC=\${NPROC:-1}
NNODES=\${NNODES:-1}
if [ "$NPROC" = 1 ] && [ "$NNODES" = 1 ]; then
  exec python3 train.py "\${ARGS[@]}"
fi
exec torchrun --nnodes "$NNODES" --node_rank "\${NODE_RANK:-0}" --nproc_per_node "$NPROC" \\
  --master_addr "\${MASTER_ADDR:-127.0.0.1}" --master_port "\${MASTER_PORT:-29500}" train.py "\${ARGS[@]}"
`;
}

export function projectReadme(pipeline: Pipeline, sha: string, stages: number): string {
  return `# ${pipeline.info.name || 'pipeline'}: PyTorch replay

Written by \`sparse-studio export-torch\`. It replays the pipeline (${stages} stage${stages === 1 ? '' : 's'})
with PyTorch, as the studio's engine runs it: Freeze / Replace (block masks) / Unfreeze, the
distillation losses against the dense base, AdamW, the LR schedule, clipping, evaluations,
gates with their on-fail policies and a checkpoint per stage.

Pipeline: \`pipeline.json\` (canonical JSON), sha256 \`${sha}\` (also in \`plan.json\`).

## Run

    pip install -r requirements.txt
    python3 train.py --out runs/torch-run                  # one process
    torchrun --nproc_per_node 8 train.py --out runs/x      # one node, 8 GPUs
    ./launch.sh                                           # see the multi-node examples inside

It also runs with the env:// variables set by hand (one process per rank):

    RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 python3 train.py --out runs/x &
    RANK=1 WORLD_SIZE=2 LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 python3 train.py --out runs/x

Options: \`--max-steps-per-stage N\` (smoke tests; the LR schedule keeps the stage's length),
\`--model DIR\` (another copy of the base model), \`--device auto|cpu|cuda\`, \`--ddp\` (DDP even
where FSDP2 exists), \`--threads N\`.

Ranks split each batch's rows; gradients are averaged by DDP (gloo on CPU, NCCL on GPUs) or,
on GPUs with torch >= 2.4, by FSDP2 \`fully_shard\`. GPUs compute in bf16 autocast when the first
Train node asks for bf16. Attention: FlexAttention with a \`BlockMask\` where torch >= 2.5 on a
GPU, masked softmax otherwise. The attention-KL term is computed from explicit (T x T) scores.

## Follow the run

The run folder has the studio's format (\`run.json\`, \`metrics.jsonl\`, \`events.jsonl\`,
\`pipeline.json\`, \`checkpoints/stage-<n>/\`): \`sparse-studio watch RUN_DIR\` prints the live
table, and the studio's Runs view can attach to the folder.

## Files

| File | Contents |
|---|---|
| \`train.py\` | The stage loop, losses, optimiser, gates, run log. |
| \`model.py\` | llama / qwen3 / minicpm decoder with Hugging Face tensor names. |
| \`masks.py\` | Block masks as the engine builds them (static rules, seeded random blocks, pooled top-k). |
| \`data.py\` | Token files and the studio's batch order; the file format is in its docstring. |
| \`st_io.py\` | safetensors reading (sharded too) and writing. |
| \`plan.json\` | The pipeline, its stages in execution order, the model and data locations. |
| \`data/*.tokens\` | Packed train and validation token streams per Dataset node. |

Not replayed: the trainable \`indexer\` selector (the export refuses it), fp16 loss scaling,
LongRoPE, and the Export node (the stage checkpoints hold the weights).
`;
}
