"""Builds the artifact scanner's test corpus with the real libraries.

Usage: python mkcorpus.py OUTDIR

Benign files come from scikit-learn, joblib, NumPy, XGBoost, safetensors
and ONNX writing models as they do in production. Malicious ones are what
attackers publish: __reduce__ payloads at every protocol, imports whose
names are hidden in the memo, getattr chains, payloads inside PyTorch
archives and object arrays, lying safetensors headers, escaping paths.
Nothing here is ever loaded: the payloads only name `id`-style commands.
PyTorch itself is not installed (its wheels bring gigabytes of CUDA), so
PyTorch archives are written with zipfile in torch.save's layout.
"""
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

import joblib
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
import xgboost as xgb

out = sys.argv[1]


def path(name):
    p = os.path.join(out, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


X, y = make_classification(n_samples=200, n_features=8, random_state=0)


class Payload:
    """Pickles as a call of os.system: what a poisoned model carries."""

    def __init__(self, fn=os.system, arg="id"):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


# ---- benign ----------------------------------------------------------------
logreg = LogisticRegression(max_iter=200).fit(X, y)
for proto in (2, 4, 5):
    write(f"benign/sklearn_logreg_p{proto}.pkl", pickle.dumps(logreg, protocol=proto))
rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
joblib.dump(rf, path("benign/sklearn_rf.joblib"))
pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(X, y)
joblib.dump(pipe, path("benign/sklearn_pipeline.joblib.gz"), compress=("gzip", 3))
joblib.dump(pipe, path("benign/sklearn_pipeline_zlib.joblib"), compress=3)
joblib.dump(pipe, path("benign/sklearn_pipeline.joblib.bz2"), compress=("bz2", 3))
booster = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y)
write("benign/xgboost.pkl", pickle.dumps(booster, protocol=4))
booster.save_model(path("benign/xgboost.json"))
booster.save_model(path("benign/xgboost.ubj"))
np.save(path("benign/weights.npy"), np.arange(1000, dtype=np.float32).reshape(10, 100))
np.savez(path("benign/weights.npz"), a=np.ones((3, 3)), b=np.arange(5))
np.save(path("benign/object_array.npy"), np.array([1, "two", (3.0, 4)], dtype=object), allow_pickle=True)
save_file({"w": np.ones((4, 4), dtype=np.float32), "b": np.zeros(4, dtype=np.float16)}, path("benign/model.safetensors"))
write("benign/protocol0.pkl", pickle.dumps({"a": [1, 2.5, "x"], "b": (None, True)}, protocol=0))
from collections import OrderedDict  # noqa: E402

write("benign/ordered_dict_p2.pkl", pickle.dumps(OrderedDict(a=np.float64(1.5), b=np.arange(3)), protocol=2))

# ONNX: a model with an initializer, and one whose weights live beside it.
w = numpy_helper.from_array(np.ones((2, 2), dtype=np.float32), name="W")
graph = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Y"])], "g",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 2])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 2])], [w])
model = helper.make_model(graph)
onnx.save(model, path("benign/model.onnx"))
os.makedirs(path("benign/onnx_external/x"), exist_ok=True)
onnx.save_model(model, path("benign/onnx_external/model.onnx"), save_as_external_data=True,
                all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
write("benign/config.json", json.dumps({"model_type": "logreg"}).encode())


# PyTorch's torch.save layout without torch: fake modules so that pickle
# writes the same globals (torch._utils._rebuild_tensor_v2, torch.FloatStorage)
# and persistent ids that torch.save writes.
def fake_torch():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*a):
        raise RuntimeError("never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2

    class FloatStorage:
        pass

    FloatStorage.__module__ = "torch"
    FloatStorage.__qualname__ = "FloatStorage"
    torch.FloatStorage = FloatStorage
    torch._utils = utils
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    return torch, utils


torch, tutils = fake_torch()


class Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride = (self.shape[1], 1) if len(self.shape) == 2 else (1,)
        return (tutils._rebuild_tensor_v2, (self.storage, 0, self.shape, stride, False, OrderedDict()))


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def torch_zip(name, state, storages):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump(state)
    with zipfile.ZipFile(path(name), "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            z.writestr(f"archive/data/{key}", data)
        z.writestr("archive/version", "3\n")
        z.writestr("archive/.data/serialization_id", "1234567890")


s0, s1 = Storage("0", 16), Storage("1", 4)
state = OrderedDict(weight=Tensor(s0, (4, 4)), bias=Tensor(s1, (4,)))
raw = {"0": np.ones(16, dtype=np.float32).tobytes(), "1": np.zeros(4, dtype=np.float32).tobytes()}
torch_zip("benign/pytorch_state_dict.pt", state, raw)

# ---- malicious -------------------------------------------------------------
for proto in (0, 2, 4, 5):
    write(f"malicious/reduce_os_system_p{proto}.pkl", pickle.dumps(Payload(), protocol=proto))
import subprocess  # noqa: E402
import runpy  # noqa: E402

write("malicious/reduce_subprocess_p4.pkl", pickle.dumps(Payload(subprocess.check_output, ["id"]), protocol=4))
write("malicious/reduce_runpy_p5.pkl", pickle.dumps(Payload(runpy.run_path, "/tmp/x.py"), protocol=5))
# STACK_GLOBAL whose module and name come from the memo, put there long
# before, inside an innocent-looking list.
write("malicious/stack_global_memo.pkl",
      b"\x80\x04" b"]\x94(" b"\x8c\x02os\x94" b"\x8c\x06system\x94" b"e0"
      b"\x8c\x05numpy\x94" b"0"
      b"h\x01h\x02\x93\x94" b"\x8c\x02id\x94\x85R.")
# The same through LONG_BINPUT/LONG_BINGET and a DUP'd string.
write("malicious/stack_global_long_memo.pkl",
      b"\x80\x04" b"\x8c\x05posix" b"r\x10\x00\x00\x00" b"0" b"\x8c\x06system2"
      b"j\x10\x00\x00\x00" b"\x8c\x06system\x93" b"\x8c\x02id\x85R.")
# builtins.getattr chains: getattr(__import__('os'), 'system')('id').
write("malicious/getattr_chain_p2.pkl",
      b"\x80\x02" b"cbuiltins\ngetattr\n" b"cbuiltins\n__import__\n" b"X\x02\x00\x00\x00os\x85R"
      b"X\x06\x00\x00\x00system\x86R" b"X\x02\x00\x00\x00id\x85R.")
write("malicious/getattr_dunder_p4.pkl",
      b"\x80\x04" b"\x8c\x08builtins\x8c\x07getattr\x93" b"\x8c\x0bcollections\x8c\x0bOrderedDict\x93"
      b"\x8c\x08__init__\x86R.")
# Protocol 0's INST and OBJ opcodes, which import and call in one step.
write("malicious/inst_p0.pkl", b"(S'id'\nios\nsystem\n.")
write("malicious/obj_p1.pkl", b"(cos\nsystem\nS'id'\no.")
# Python 2's module names, which fix_imports maps to builtins.
write("malicious/py2_builtin_eval_p0.pkl", b"c__builtin__\neval\n(S'1+1'\ntR.")
state_bad = OrderedDict(weight=Tensor(s0, (4, 4)), hook=Payload())
torch_zip("malicious/pytorch_payload.pt", state_bad, raw)
np.save(path("malicious/object_payload.npy"), np.array([Payload(), 1], dtype=object), allow_pickle=True)
joblib.dump({"w": np.ones((50, 50)), "post": Payload()}, path("malicious/joblib_payload.joblib"))
joblib.dump({"w": np.ones((50, 50)), "post": Payload()}, path("malicious/joblib_payload.joblib.gz"), compress=("gzip", 3))


def safetensors_raw(name, header, data, claimed=None):
    h = json.dumps(header).encode()
    n = len(h) if claimed is None else claimed
    write(name, struct.pack("<Q", n) + h + data)


safetensors_raw("malicious/overlap.safetensors",
                {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                 "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, bytes(24))
safetensors_raw("malicious/huge_header.safetensors",
                {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4), claimed=100 * 10**9)
safetensors_raw("malicious/out_of_bounds.safetensors",
                {"a": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}, bytes(16))
with zipfile.ZipFile(path("malicious/zip_slip.zip"), "w") as z:
    z.writestr("model/ok.txt", "fine")
    z.writestr("../../../etc/cron.d/evil", "* * * * * root id\n")
escape = onnx.load(path("benign/model.onnx"))
t = escape.graph.initializer[0]
t.ClearField("raw_data")
t.data_location = TensorProto.EXTERNAL
e = t.external_data.add()
e.key, e.value = "location", "../../../../etc/passwd"
onnx.save(escape, path("malicious/external_escape.onnx"))

# ---- unknown: code nobody vouched for, not known to be harmful ------------
class MyModel:
    def __init__(self):
        self.w = [1, 2, 3]


MyModel.__module__ = "custom_models"
MyModel.__qualname__ = "MyModel"
sys.modules["custom_models"] = types.ModuleType("custom_models")
sys.modules["custom_models"].MyModel = MyModel
write("unknown/custom_class.pkl", pickle.dumps(MyModel(), protocol=4))
import functools  # noqa: E402

write("unknown/functools_partial.pkl", pickle.dumps(functools.partial(int, base=2), protocol=4))
