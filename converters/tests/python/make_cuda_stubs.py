"""Make the PyPI torch wheel importable on a machine without CUDA libraries (for the tests only).

The torch 2.13 wheel links libtorch_python.so against CUDA libraries that are not installed
here (cuDNN, cuBLAS, NCCL, ...). This writes empty stand-in shared objects with the right
sonames and symbol-version nodes into DIR. With `LD_LIBRARY_PATH=DIR TORCH_USE_RTLD_GLOBAL=1`
(lazy binding) `import torch` then works for CPU-only use; nothing ever calls into the stubs.

usage: python3 make_cuda_stubs.py TORCH_PACKAGE_DIR OUT_DIR
"""
import glob
import os
import re
import subprocess
import sys


def main():
    torch_dir, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    libs = glob.glob(os.path.join(torch_dir, "lib", "*.so*")) + glob.glob(os.path.join(torch_dir, "*.so"))
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(torch_dir, "lib"))
    missing = set()
    for lib in libs:
        ldd = subprocess.run(["ldd", lib], capture_output=True, text=True, env=env).stdout
        missing |= set(re.findall(r"^\s*(\S+) => not found", ldd, re.M))
    versions = {}
    for lib in libs:
        current = None
        for line in subprocess.run(["readelf", "-V", lib], capture_output=True, text=True).stdout.splitlines():
            m = re.search(r"File: (\S+)", line)
            if m:
                current = m.group(1)
                continue
            m = re.search(r"Name: (\S+)", line)
            if m and current:
                versions.setdefault(current, set()).add(m.group(1))
    src = os.path.join(out, "stub.c")
    with open(src, "w") as f:
        f.write("void zoo_cuda_stub(void) {}\n")
    for soname in sorted(missing):
        nodes = sorted(versions.get(soname, set())) or [soname]
        vmap = os.path.join(out, soname + ".map")
        with open(vmap, "w") as f:
            for i, node in enumerate(nodes):
                body = "global: zoo_cuda_stub; local: *;" if i == 0 else ""
                f.write(f"{node} {{ {body} }};\n")
        subprocess.run(
            ["cc", "-shared", "-fPIC", "-o", os.path.join(out, soname), f"-Wl,-soname,{soname}",
             f"-Wl,--version-script={vmap}", src],
            check=True,
        )
        print(soname, nodes)


if __name__ == "__main__":
    main()
