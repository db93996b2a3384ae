package scan

import "strings"

// deniedModules are modules any of whose globals lets a pickle run a
// process, execute code, touch files or the network, or load another
// pickle. A global in one of them (or a submodule) is dangerous.
var deniedModules = []string{
	"os", "posix", "nt", "subprocess", "_posixsubprocess", "sys", "runpy", "socket", "_socket",
	"webbrowser", "pty", "shutil", "importlib", "imp", "pickle", "_pickle", "cPickle", "dill",
	"cloudpickle", "marshal", "ctypes", "_ctypes", "code", "codeop", "commands", "popen2",
	"pdb", "bdb", "timeit", "profile", "cProfile", "trace", "asyncio", "multiprocessing",
	"_thread", "thread", "threading", "signal", "urllib", "urllib2", "urllib3", "http", "httplib",
	"requests", "ftplib", "telnetlib", "smtplib", "poplib", "imaplib", "nntplib", "xmlrpc",
	"ssl", "pathlib", "_io", "io", "fileinput", "zipimport", "site", "distutils", "setuptools",
	"pip", "venv", "ensurepip", "tempfile", "glob", "linecache", "platform", "winreg",
	"_winapi", "msvcrt", "sqlite3", "shelve", "dbm", "types", "inspect", "gc",
	"torch.hub", "torch.jit", "torch.serialization", "torch.package",
	"torch.utils.cpp_extension", "torch._dynamo", "torch._inductor", "numpy.testing",
	"numpy.f2py", "numpy.distutils", "numpy.ctypeslib", "numpy.lib.npyio", "numpy.lib._npyio_impl",
	"numpy.lib._datasource", "pandas.io", "joblib.parallel", "joblib._store_backends",
	"sklearn.datasets", "sklearn.utils._testing", "xgboost.tracker", "xgboost.collective",
	"xgboost.dask", "xgboost.spark", "keras", "tensorflow", "IPython", "builtins.__import__",
}

// deniedGlobals are single globals of otherwise harmless modules.
var deniedGlobals = map[string]bool{
	"builtins.eval": true, "builtins.exec": true, "builtins.execfile": true, "builtins.compile": true,
	"builtins.open": true, "builtins.getattr": true, "builtins.setattr": true, "builtins.delattr": true,
	"builtins.__import__": true, "builtins.globals": true, "builtins.locals": true, "builtins.vars": true,
	"builtins.input": true, "builtins.breakpoint": true, "builtins.apply": true, "builtins.file": true,
	"builtins.reload": true, "builtins.memoryview": false,
	"numpy.load": true, "numpy.save": true, "numpy.savez": true, "numpy.savez_compressed": true,
	"numpy.savetxt": true, "numpy.loadtxt": true, "numpy.genfromtxt": true, "numpy.fromfile": true,
	"numpy.memmap": true, "numpy.fromregex": true, "numpy.DataSource": true,
	"torch.load": true, "torch.save": true, "torch.storage._load_from_bytes": true,
	"joblib.load": true, "joblib.dump": true, "pandas.read_pickle": true,
	"codecs.open": true, "operator.attrgetter": true, "operator.methodcaller": true,
	"_operator.attrgetter": true, "_operator.methodcaller": true, "_codecs.open": true, "copyreg.add_extension": true,
}

// allowedGlobals are the exact globals that the libraries modelsync serves
// write into their pickles and that do nothing but rebuild data.
var allowedGlobals = map[string]bool{
	"builtins.set": true, "builtins.frozenset": true, "builtins.list": true, "builtins.dict": true,
	"builtins.tuple": true, "builtins.bytearray": true, "builtins.bytes": true, "builtins.str": true,
	"builtins.int": true, "builtins.float": true, "builtins.complex": true, "builtins.bool": true,
	"builtins.slice": true, "builtins.range": true, "builtins.object": true, "builtins.NoneType": true,
	"builtins.Ellipsis": true, "builtins.NotImplemented": true,
	"copyreg._reconstructor": true, "copyreg.__newobj__": true, "copyreg.__newobj_ex__": true,
	"_codecs.encode":          true,
	"collections.OrderedDict": true, "collections.defaultdict": true, "collections.deque": true,
	"collections.Counter": true,
	"datetime.datetime":   true, "datetime.date": true, "datetime.time": true, "datetime.timedelta": true,
	"datetime.timezone": true, "decimal.Decimal": true, "fractions.Fraction": true, "uuid.UUID": true,
	"numpy.ndarray": true, "numpy.dtype": true, "numpy.core.multiarray._reconstruct": true,
	"numpy._core.multiarray._reconstruct": true, "numpy.core.multiarray.scalar": true,
	"numpy._core.multiarray.scalar": true, "numpy.core.numeric._frombuffer": true,
	"numpy._core.numeric._frombuffer": true, "numpy.ma.core._mareconstruct": true,
	"numpy.ma.core.MaskedArray": true, "numpy.matrix": true, "numpy.random.mtrand.RandomState": true,
	"numpy.random._mt19937.MT19937": true, "numpy.random._pcg64.PCG64": true,
	"numpy.random._generator.Generator": true, "numpy.random.bit_generator.SeedSequence": true,
	"joblib.numpy_pickle.NumpyArrayWrapper": true, "joblib.numpy_pickle_compat.NDArrayWrapper": true,
	"torch._utils._rebuild_tensor": true, "torch._utils._rebuild_tensor_v2": true,
	"torch._utils._rebuild_tensor_v3": true, "torch._utils._rebuild_parameter": true,
	"torch._utils._rebuild_parameter_with_state": true, "torch._utils._rebuild_sparse_tensor": true,
	"torch._utils._rebuild_qtensor": true, "torch._utils._rebuild_device_tensor_from_numpy": true,
	"torch._tensor._rebuild_from_type_v2": true, "torch.nn.parameter.Parameter": true,
	"torch.Size": true, "torch.device": true, "torch.Tensor": true, "torch._utils._rebuild_meta_tensor_no_storage": true,
	"torch.storage.UntypedStorage": true, "torch.storage.TypedStorage": true,
}

// allowedModules are modules whose every global (but dunder attributes) is
// a data or estimator class: scikit-learn, XGBoost, SciPy's containers,
// NumPy's dtype and random-state constructors, torch's dtypes and storages.
var allowedModules = []string{
	"sklearn", "xgboost", "scipy.sparse", "numpy.dtypes", "numpy.random._pickle",
	"numpy.core.numerictypes", "numpy._core.numerictypes",
}

// torchNames are top-level torch globals a state dict names (dtypes,
// storage classes, memory formats).
func torchDataName(name string) bool {
	return strings.HasSuffix(name, "Storage") || strings.HasPrefix(name, "float") || strings.HasPrefix(name, "int") ||
		strings.HasPrefix(name, "uint") || strings.HasPrefix(name, "complex") || name == "bfloat16" || name == "half" ||
		name == "double" || name == "long" || name == "short" || name == "bool" || name == "cfloat" ||
		name == "cdouble" || strings.HasSuffix(name, "_format") || name == "qint8" || name == "quint8" || name == "qint32"
}

type classifier struct {
	extraExact   map[string]bool
	extraModules []string
}

func newClassifier(extra []string) *classifier {
	c := &classifier{extraExact: map[string]bool{}}
	for _, e := range extra {
		if m, ok := strings.CutSuffix(e, ".*"); ok {
			c.extraModules = append(c.extraModules, m)
		} else {
			c.extraExact[e] = true
		}
	}
	return c
}

func inModules(module string, mods []string) bool {
	for _, m := range mods {
		if module == m || strings.HasPrefix(module, m+".") {
			return true
		}
	}
	return false
}

func isDunder(s string) bool {
	return len(s) > 4 && strings.HasPrefix(s, "__") && strings.HasSuffix(s, "__")
}

// classify judges module.name. The deny list wins over every allow list,
// the user's included; an attribute path through a dunder (__globals__,
// __subclasses__, __builtins__...) is dangerous, since that is how a
// harmless class leads back to eval.
func (c *classifier) classify(module, name string) (Verdict, string, string) {
	first, rest, dotted := strings.Cut(name, ".")
	g := module + "." + first
	if deniedGlobals[g] || inModules(module, deniedModules) || inModules(g, deniedModules) {
		return Dangerous, "pickle.denied_global", "loading imports " + module + "." + name + ", which can run code, processes, files or the network"
	}
	if dotted {
		for _, part := range strings.Split(rest, ".") {
			if isDunder(part) {
				return Dangerous, "pickle.dunder_attribute", "loading walks " + module + "." + name + " through a special attribute, a known way back to eval"
			}
		}
	}
	full := module + "." + name
	if allowedGlobals[full] || c.extraExact[full] {
		return Safe, "", ""
	}
	if !isDunder(first) && !dotted {
		if inModules(module, allowedModules) || inModules(module, c.extraModules) {
			return Safe, "", ""
		}
		if module == "torch" && torchDataName(name) {
			return Safe, "", ""
		}
	}
	return Unknown, "pickle.unknown_global", "loading imports " + full + ", which is on neither the allow-list nor the deny-list"
}
