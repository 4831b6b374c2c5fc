"""The peer of bench/gpu_check.sh: AlexNet training steps in PyTorch on a GPU (or the CPU).

    python3 bench/torch_alexnet_step.py --device=cuda --precision=bf16 --compile --batch=256

The same network (torchvision's AlexNet layout, written out so that torchvision is not needed),
loss (cross entropy with label smoothing 0.1 plus L2 weight decay 1e-4 in the loss) and optimiser
(Nesterov momentum SGD) as ``main.py``'s training path, on random data made as ``main.py --synthetic``
makes it for a GPU (a uint8 batch on the host, copied to the device and normalised there every step).
``--precision=bf16`` runs the forward pass under autocast to bfloat16 with float32 weights (Keras' mixed_bfloat16);
``--compile`` uses ``torch.compile``, PyTorch's counterpart of ``--xla``. Prints one JSON line:
images per second over ``--steps`` timed steps after ``--warmup_steps`` (the device is
synchronised before and after the timed steps).
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--image_size", type=int, default=224)
    p.add_argument("--num_classes", type=int, default=1000)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup_steps", type=int, default=10)
    args = p.parse_args()

    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch_alexnet import torchvision_alexnet  # bench/ is on sys.path when run as a script

    device = torch.device(args.device)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = torchvision_alexnet(args.num_classes).to(device).train()
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True)
    # As main.py --synthetic --normalize_on=device (the GPU default) feeds ours: one uint8 batch made on
    # the host, copied to the device every step and normalised there with ImageNet's statistics.
    host_images = torch.randint(0, 256, (args.batch, 3, args.image_size, args.image_size), dtype=torch.uint8)
    host_labels = torch.randint(0, args.num_classes, (args.batch,))
    if device.type == "cuda":
        host_images, host_labels = host_images.pin_memory(), host_labels.pin_memory()
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1) * 255

    def step():
        images = (host_images.to(device, non_blocking=True).float() - mean) / std
        labels = host_labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=0.1)
        total = loss + 1e-4 * 0.5 * sum(q.pow(2).sum() for q in params)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        return loss

    if args.compile:
        step = torch.compile(step)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup_steps):
        step()
    sync()
    began = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    seconds = time.perf_counter() - began
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(json.dumps(dict(
        bench="gpu_check", implementation="pytorch", framework=f"torch {torch.__version__}", device=name,
        precision=args.precision, compiled=args.compile, batch=args.batch, image_size=args.image_size,
        images_per_second=round(args.batch * args.steps / seconds, 1), unit="img/s", steps_timed=args.steps,
        warmup_steps_excluded=args.warmup_steps, final_loss=round(float(loss), 4))), flush=True)


if __name__ == "__main__":
    main()
