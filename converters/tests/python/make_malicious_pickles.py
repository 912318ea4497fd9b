"""Writes pickles whose globals must be refused, with Python's own pickle module.

Nothing here is ever loaded by Python: the files only exist for zoo's reader to reject.
`os.system` pickles as `posix.system` on Linux, so `os_system.pkl` is assembled by hand with a
literal `os\\nsystem` GLOBAL. Each payload also goes into a zip `.pth` (`archive/data.pkl`)
and a legacy `.pth`, next to a real tensor, to show the refusal happens inside real files.

usage: python3 make_malicious_pickles.py OUT_DIR
"""
import builtins
import io
import os
import pickle
import subprocess
import sys
import zipfile


class Call:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def payloads():
    yield "posix_system", pickle.dumps(Call(os.system, "echo pwned"), protocol=2)
    yield "builtins_eval", pickle.dumps(Call(builtins.eval, "1+1"), protocol=4)
    yield "subprocess_popen", pickle.dumps(Call(subprocess.Popen, ["true"]), protocol=4)
    # {'w': os.system('echo pwned')} with the os module named literally
    yield "os_system", b"\x80\x02}q\x00X\x01\x00\x00\x00wcos\nsystem\nX\n\x00\x00\x00echo pwned\x85Rs."
    # a state dict whose second value is an eval call; protocol 2 names the module `__builtin__`
    yield "dict_eval", pickle.dumps({"a": 1, "b": Call(builtins.eval, "2")}, protocol=2)


def zip_pth(data_pkl):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in [("archive/data.pkl", data_pkl), ("archive/byteorder", b"little"),
                           ("archive/version", b"3\n")]:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, data)
    return buf.getvalue()


def legacy_pth(object_pkl):
    head = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
    head += pickle.dumps({"protocol_version": 1001, "little_endian": True,
                          "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    return head + object_pkl + pickle.dumps([], protocol=2)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in payloads():
        with open(os.path.join(out, f"{name}.pkl"), "wb") as f:
            f.write(data)
        with open(os.path.join(out, f"{name}.pth"), "wb") as f:
            f.write(zip_pth(data))
        with open(os.path.join(out, f"{name}_legacy.pth"), "wb") as f:
            f.write(legacy_pth(data))


if __name__ == "__main__":
    main()
