"""Check the torch wheel the GPU image installs, without installing it (``make check-gpu-torch``).

Reads from the ``Dockerfile`` what ``--build-arg TORCH_VARIANT=cuda`` installs
(``torch==TORCH_VERSION`` from ``TORCH_CUDA_INDEX``, for the image's Python on
``manylinux_2_28_x86_64``), then

1. downloads that exact wheel (``pip download --no-deps``; pip checks the index's sha256);
2. reads inside it the CUDA version it was built with (``torch/version.py``), the GPU
   architectures it has kernels for (``sm_XY`` in ``libtorch_cuda.so``) and the CUDA
   runtime wheels it requires (``METADATA``);
3. resolves every dependency of the wheel on the same index for the same platform
   (``pip install --dry-run --report``, metadata only);

and prints what a GPU host needs. Exit status 0 when the wheel exists and is a CUDA
build, 1 otherwise. Needs the index (PyPI by default) and about 0.6 GB of disk
(``--dest``, default a temporary folder, removed afterwards unless given).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
PLATFORM = "manylinux_2_28_x86_64"
#: Every platform tag the image's glibc (Debian bookworm, 2.36) accepts, for pip's --platform (it does not
#: widen one manylinux tag to the older ones).
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1)] + ["manylinux2014_x86_64"]
#: The NVIDIA driver a CUDA major version needs at least (Linux), from NVIDIA's CUDA release notes.
MIN_DRIVER = {12: "525.60.13", 13: "580.65.06"}


@dataclass(frozen=True)
class GpuTorchPin:
    """What the GPU image installs: the requirement, the index, and the image's Python."""

    version: str
    index_url: str
    python: str

    @property
    def requirement(self) -> str:
        return f"torch=={self.version}"


def gpu_torch_pin(dockerfile: str) -> GpuTorchPin:
    """The GPU image's torch pin, read from the Dockerfile's ARG defaults and base image."""
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)\s*$", dockerfile, flags=re.M))
    python = re.search(r"^FROM\s+python:(\d+\.\d+)", dockerfile, flags=re.M)
    if not python or "TORCH_VERSION" not in args or "TORCH_CUDA_INDEX" not in args:
        raise ValueError("the Dockerfile needs FROM python:X.Y-..., ARG TORCH_VERSION=... and ARG TORCH_CUDA_INDEX=...")
    if not re.search(r'cuda\)\s+pip install --index-url "\$\{TORCH_CUDA_INDEX\}" "torch==\$\{TORCH_VERSION\}"',
                     dockerfile):
        raise ValueError("the Dockerfile's cuda variant does not install torch==${TORCH_VERSION} from "
                         "${TORCH_CUDA_INDEX}: update this check with it")
    return GpuTorchPin(args["TORCH_VERSION"], args["TORCH_CUDA_INDEX"], python.group(1))


def _platform_args(pin: GpuTorchPin) -> list[str]:
    tag = pin.python.replace(".", "")
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    return ["--isolated", "--only-binary=:all:", *platforms, "--python-version", pin.python,
            "--implementation", "cp", "--abi", f"cp{tag}", "--index-url", pin.index_url]


def download_wheel(pin: GpuTorchPin, dest: Path) -> Path:
    """Download the GPU image's torch wheel into ``dest`` (not installed); its path."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", *_platform_args(pin), "-d", str(dest),
                    pin.requirement], check=True)
    wheels = sorted(dest.glob(f"torch-{pin.version}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip downloaded no torch-{pin.version} wheel into {dest}")
    return wheels[0]


@dataclass(frozen=True)
class WheelFacts:
    version: str
    cuda: str | None
    architectures: tuple[str, ...]
    cuda_requirements: tuple[str, ...]


def inspect_wheel(wheel: Path) -> WheelFacts:
    """The build's version, CUDA version, GPU architectures and CUDA runtime requirements, read from the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        version_py = archive.read("torch/version.py").decode()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        architectures: set[str] = set()
        cuda_lib = next((n for n in names if n.endswith("lib/libtorch_cuda.so")), None)
        if cuda_lib:
            with archive.open(cuda_lib) as library:
                tail = b""
                while block := library.read(1 << 24):
                    architectures.update(m.decode() for m in re.findall(rb"sm_\d{2,3}", tail + block))
                    tail = block[-8:]
    version = re.search(r"__version__\s*=\s*'([^']+)'", version_py)
    cuda = re.search(r"cuda[^=\n]*=\s*'([^']+)'", version_py)
    requirements = tuple(line.split(":", 1)[1].strip() for line in metadata.splitlines()
                         if line.startswith("Requires-Dist:") and re.search(r"cuda|nvidia", line, flags=re.I))
    return WheelFacts(version.group(1) if version else "?", cuda.group(1) if cuda else None,
                      tuple(sorted(architectures, key=lambda a: int(a[3:]))), requirements)


def resolve_dependencies(pin: GpuTorchPin, scratch: Path) -> list[tuple[str, str]]:
    """(name, version) of everything ``pip install torch==V`` pulls on that index and platform (metadata only)."""
    report = scratch / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                    *_platform_args(pin), "--target", str(scratch / "target"), "--report", str(report),
                    pin.requirement], check=True)
    installs = json.loads(report.read_text())["install"]
    return sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in installs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, help="keep the downloaded wheel here (default: a temporary folder)")
    args = parser.parse_args(argv)
    pin = gpu_torch_pin(DOCKERFILE.read_text())
    print(f"GPU image: {pin.requirement} from {pin.index_url} for CPython {pin.python} on {PLATFORM}")
    with tempfile.TemporaryDirectory() as tmp:
        dest = args.dest or Path(tmp)
        dest.mkdir(parents=True, exist_ok=True)
        wheel = download_wheel(pin, dest)
        facts = inspect_wheel(wheel)
        dependencies = resolve_dependencies(pin, Path(tmp))
        print(f"wheel: {wheel.name} ({wheel.stat().st_size / 1e6:.0f} MB), build {facts.version}")
    if facts.cuda is None:
        print(f"FAIL: {wheel.name} is a CPU build: the GPU image would not use the GPU", file=sys.stderr)
        return 1
    major = int(facts.cuda.split(".")[0])
    print(f"CUDA {facts.cuda}; kernels for {', '.join(facts.architectures) or 'no architecture found'}")
    print("CUDA runtime from the index: " + "; ".join(facts.cuda_requirements))
    print(f"resolved {len(dependencies)} packages: " + ", ".join(f"{n}=={v}" for n, v in dependencies))
    lowest = facts.architectures[0] if facts.architectures else "?"
    print(f"a GPU host needs: an NVIDIA GPU of compute capability {lowest[3:-1]}.{lowest[-1]} or newer, "
          f"the NVIDIA driver >= {MIN_DRIVER.get(major, '?')} (CUDA {major}), and for Docker the NVIDIA "
          "container toolkit; no CUDA toolkit (the runtime comes with the wheels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
