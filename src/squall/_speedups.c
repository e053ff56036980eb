/* The compiled hot path of Squall's HTTP/1.1 response writer.
 *
 * build_response_head() has exactly the interface and results of
 * squall.protocols.http.response.build_response_head (the reference).  It
 * serialises the common case -- a known status, a list of (bytes, bytes)
 * headers with valid names and values, at most one Content-Length -- in one
 * pass into one bytes object.  Anything else (Transfer-Encoding, Connection,
 * an app's own Server or Date, an unknown status, a bad header, any type that
 * is not exactly bytes) is handed to the Python reference, so errors and rare
 * cases behave identically by construction.
 *
 * setup() is called once by response.py with the objects both paths share.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *status_lines;  /* dict[int, bytes] */
static PyObject *head_class;    /* ResponseHead */
static PyObject *reference;     /* the pure-Python build_response_head */

enum { FRAMING_NONE = 0, FRAMING_LENGTH = 1, FRAMING_CHUNKED = 2, FRAMING_CLOSE = 3 };

/* RFC 9110 5.6.2 tchar */
static unsigned char is_tchar[256];

static void init_tables(void) {
    const char *extra = "!#$%&'*+-.^_`|~";
    for (int c = '0'; c <= '9'; c++) is_tchar[c] = 1;
    for (int c = 'a'; c <= 'z'; c++) is_tchar[c] = 1;
    for (int c = 'A'; c <= 'Z'; c++) is_tchar[c] = 1;
    for (const char *p = extra; *p; p++) is_tchar[(unsigned char)*p] = 1;
}

static int equals_lower(const char *s, Py_ssize_t n, const char *lower, Py_ssize_t ln) {
    if (n != ln) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
        if (c != lower[i]) return 0;
    }
    return 1;
}

static int is_space(char c) {
    /* bytes.strip() removes ASCII whitespace */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x0b' || c == '\x0c';
}

#define LIT(s) s, (Py_ssize_t)(sizeof(s) - 1)

/* -1: let the reference decide; otherwise the header's kind. */
enum { KIND_PLAIN = 0, KIND_LENGTH = 1 };

static int classify(const char *name, Py_ssize_t n) {
    if (n == 14 && equals_lower(name, n, LIT("content-length"))) return KIND_LENGTH;
    if (equals_lower(name, n, LIT("transfer-encoding")) || equals_lower(name, n, LIT("connection")) ||
        equals_lower(name, n, LIT("server")) || equals_lower(name, n, LIT("date")))
        return -1;
    return KIND_PLAIN;
}

static PyObject *fall_back(PyObject *const *args, Py_ssize_t nargs) {
    return PyObject_Vectorcall(reference, args, (size_t)nargs, NULL);
}

static PyObject *build_response_head(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7 || reference == NULL) {
        if (reference == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "squall._speedups.setup() was not called");
            return NULL;
        }
        return fall_back(args, nargs);
    }
    PyObject *status = args[0], *headers = args[1], *defaults = args[2];
    if (!PyLong_CheckExact(status) || !PyList_CheckExact(headers) || !PyBytes_CheckExact(defaults))
        return fall_back(args, nargs);
    PyObject *status_line = PyDict_GetItemWithError(status_lines, status);
    if (status_line == NULL) {
        if (PyErr_Occurred()) return NULL;
        return fall_back(args, nargs);
    }
    long code = PyLong_AsLong(status);
    if (code == -1 && PyErr_Occurred()) return NULL;
    int http_11 = PyObject_IsTrue(args[4]);
    int keep_alive = PyObject_IsTrue(args[5]);
    int is_head = PyObject_IsTrue(args[6]);
    if (http_11 < 0 || keep_alive < 0 || is_head < 0) return NULL;

    Py_ssize_t count = PyList_GET_SIZE(headers);
    Py_ssize_t size = PyBytes_GET_SIZE(status_line) + PyBytes_GET_SIZE(defaults) + 2;
    long long content_length = -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PyList_GET_ITEM(headers, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) return fall_back(args, nargs);
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        if (!PyBytes_CheckExact(name) || !PyBytes_CheckExact(value)) return fall_back(args, nargs);
        const char *n = PyBytes_AS_STRING(name), *v = PyBytes_AS_STRING(value);
        Py_ssize_t nlen = PyBytes_GET_SIZE(name), vlen = PyBytes_GET_SIZE(value);
        if (nlen == 0) return fall_back(args, nargs);
        for (Py_ssize_t j = 0; j < nlen; j++)
            if (!is_tchar[(unsigned char)n[j]]) return fall_back(args, nargs);
        for (Py_ssize_t j = 0; j < vlen; j++) {
            char c = v[j];
            if (c == '\r' || c == '\n' || c == '\0') return fall_back(args, nargs);
        }
        int kind = classify(n, nlen);
        if (kind < 0) return fall_back(args, nargs);
        if (kind == KIND_LENGTH) {
            if (content_length >= 0) return fall_back(args, nargs); /* repeated: the reference raises */
            Py_ssize_t a = 0, b = vlen;
            while (a < b && is_space(v[a])) a++;
            while (b > a && is_space(v[b - 1])) b--;
            /* Digits only, and few enough that a long long holds them; else the reference decides. */
            if (b == a || b - a > 18) return fall_back(args, nargs);
            long long cl = 0;
            for (Py_ssize_t j = a; j < b; j++) {
                if (v[j] < '0' || v[j] > '9') return fall_back(args, nargs);
                cl = cl * 10 + (v[j] - '0');
            }
            content_length = cl;
        }
        size += nlen + 2 + vlen + 2;
    }

    int framing;
    const char *extra1 = NULL, *extra2 = NULL;
    Py_ssize_t extra1_len = 0, extra2_len = 0;
    if (code < 200 || code == 204 || code == 304) {
        framing = FRAMING_NONE;
    } else if (content_length >= 0) {
        framing = FRAMING_LENGTH;
    } else if (http_11) {
        framing = FRAMING_CHUNKED;
        extra1 = "transfer-encoding: chunked\r\n";
        extra1_len = 28;
    } else {
        framing = FRAMING_CLOSE;
        if (!is_head) keep_alive = 0;
    }
    if (!keep_alive) {
        extra2 = "connection: close\r\n";
        extra2_len = 19;
    } else if (!http_11) {
        extra2 = "connection: keep-alive\r\n";
        extra2_len = 24;
    }
    size += extra1_len + extra2_len;

    PyObject *data = PyBytes_FromStringAndSize(NULL, size);
    if (data == NULL) return NULL;
    char *out = PyBytes_AS_STRING(data);
#define PUT(p, len) do { memcpy(out, (p), (size_t)(len)); out += (len); } while (0)
    PUT(PyBytes_AS_STRING(status_line), PyBytes_GET_SIZE(status_line));
    PUT(PyBytes_AS_STRING(defaults), PyBytes_GET_SIZE(defaults));
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PyList_GET_ITEM(headers, i);
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        PUT(PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name));
        PUT(": ", 2);
        PUT(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
        PUT("\r\n", 2);
    }
    if (extra1) PUT(extra1, extra1_len);
    if (extra2) PUT(extra2, extra2_len);
    PUT("\r\n", 2);
#undef PUT

    PyObject *cl_obj = content_length >= 0 ? PyLong_FromLongLong(content_length) : Py_NewRef(Py_None);
    if (cl_obj == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    PyObject *fr = PyLong_FromLong(framing);
    if (fr == NULL) {
        Py_DECREF(data);
        Py_DECREF(cl_obj);
        return NULL;
    }
    PyObject *call_args[4] = {data, fr, cl_obj, keep_alive ? Py_True : Py_False};
    PyObject *result = PyObject_Vectorcall(head_class, call_args, 4, NULL);
    Py_DECREF(data);
    Py_DECREF(fr);
    Py_DECREF(cl_obj);
    return result;
}

static PyObject *setup(PyObject *self, PyObject *args) {
    PyObject *lines, *cls, *ref;
    if (!PyArg_ParseTuple(args, "O!OO:setup", &PyDict_Type, &lines, &cls, &ref)) return NULL;
    Py_XSETREF(status_lines, Py_NewRef(lines));
    Py_XSETREF(head_class, Py_NewRef(cls));
    Py_XSETREF(reference, Py_NewRef(ref));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"build_response_head", (PyCFunction)(void (*)(void))build_response_head, METH_FASTCALL,
     "Compiled squall.protocols.http.response.build_response_head (same arguments, same result)."},
    {"setup", setup, METH_VARARGS, "setup(status_lines, ResponseHead, reference): the objects shared with the pure path."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "squall._speedups", NULL, -1, methods};

PyMODINIT_FUNC PyInit__speedups(void) {
    init_tables();
    return PyModule_Create(&module);
}
