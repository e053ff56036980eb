/* The compiled hot path of Squall's HTTP/1.1 wire layer.
 *
 * parse_request_head() reads the common request head -- a method from a
 * short list, an origin-form target of visible ASCII, HTTP/1.1 or 1.0, field
 * lines of visible ASCII and spaces -- in one pass, with every check of the
 * pure path (check_head_bytes, then llhttp or h11) that such a head can fail.
 * For anything else (a limit exceeded, a tab, obs-text, another method or
 * target form, any malformed byte) it returns None and the pure path reads
 * the head, so refusals and rare heads behave identically by construction.
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
 * response_fields() and encode_headers() are the HTTP/2 response head:
 * squall.protocols.http2.request.response_headers and
 * squall.protocols.http2.frames.encode_headers, for lists of (bytes, bytes)
 * with valid names and values; anything else goes to those references.
 *
 * split_target() splits an origin-form target into the scope's path,
 * raw_path and query_string, as h1_request.split_target does.
 *
 * The setup functions are called once, by response.py and the HTTP/2
 * modules, with the objects both paths share.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *status_lines;  /* dict[int, bytes] */
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
    PyObject *result = PyTuple_Pack(4, data, fr, cl_obj, keep_alive ? Py_True : Py_False);
    Py_DECREF(data);
    Py_DECREF(fr);
    Py_DECREF(cl_obj);
    return result;
}

/* ---- request heads ---------------------------------------------------- */

/* The methods read here; any other known one goes to the pure path. */
static const char *fast_methods[] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"};
#define N_FAST_METHODS 7
static PyObject *method_objects[N_FAST_METHODS];
static PyObject *version_11, *version_10;

/* What makes a head not "plain" for check_request_head: a field whose name
 * is one of these (lowercase) changes framing or the connection.  (A single
 * Content-Length of up to 18 digits is read here instead.) */
static int is_special_name(const char *n, Py_ssize_t len) {
    switch (len) {
    case 2: return memcmp(n, "te", 2) == 0;
    case 6: return memcmp(n, "expect", 6) == 0;
    case 7: return memcmp(n, "upgrade", 7) == 0;
    case 10: return memcmp(n, "connection", 10) == 0;
    case 14: return memcmp(n, "http2-settings", 14) == 0;
    case 17: return memcmp(n, "transfer-encoding", 17) == 0;
    }
    return 0;
}

/* parse_request_head(head, request_line_size, head_size, fields, field_size)
 *   -> (method, target, http_version, headers, plain) or None
 *
 * `head` is a complete head, CRLF CRLF included; the limits are those of
 * RequestLimits (0: no limit on fields or field size).  `plain` is the
 * body's length (0 without a Content-Length) when all check_request_head
 * would find to act on is at most one valid Content-Length: HTTP/1.1,
 * exactly one Host, and no other field it looks at; else -1. */
static PyObject *parse_request_head(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "parse_request_head(head: bytes, request_line_size, head_size, fields, field_size)");
        return NULL;
    }
    Py_ssize_t limit[4];
    for (int i = 0; i < 4; i++) {
        limit[i] = PyLong_AsSsize_t(args[i + 1]);
        if (limit[i] == -1 && PyErr_Occurred()) return NULL;
    }
    Py_ssize_t request_line_size = limit[0], head_size = limit[1], max_fields = limit[2], field_size = limit[3];
    const unsigned char *start = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    const unsigned char *p = start, *end = start + size;
    if (size > head_size || (field_size > 0 && field_size < 2)) Py_RETURN_NONE;

    /* The request line: method SP origin-form SP HTTP/1.x CRLF. */
    while (p < end && is_tchar[*p]) p++;
    Py_ssize_t mlen = p - start;
    if (p == end || *p != ' ') Py_RETURN_NONE;
    PyObject *method = NULL;
    for (int i = 0; i < N_FAST_METHODS; i++) {
        if ((Py_ssize_t)strlen(fast_methods[i]) == mlen && memcmp(start, fast_methods[i], (size_t)mlen) == 0) {
            method = method_objects[i];
            break;
        }
    }
    if (method == NULL) Py_RETURN_NONE;
    const unsigned char *target = ++p;
    if (p == end || *p != '/') Py_RETURN_NONE;
    while (p < end && *p > 0x20 && *p < 0x7f) p++;
    Py_ssize_t tlen = p - target;
    if (end - p < 13 || *p != ' ' || memcmp(p + 1, "HTTP/1.", 7) != 0 || p[9] != '\r' || p[10] != '\n') Py_RETURN_NONE;
    if (p + 9 - start > request_line_size) Py_RETURN_NONE;
    PyObject *version;
    int http_11;
    if (p[8] == '1') {
        version = version_11;
        http_11 = 1;
    } else if (p[8] == '0') {
        version = version_10;
        http_11 = 0;
    } else {
        Py_RETURN_NONE;
    }
    p += 11;

    /* The field lines: name ":" SP* value SP* CRLF; then the empty line. */
    PyObject *headers = PyList_New(0);
    if (headers == NULL) return NULL;
    int hosts = 0, special = 0, lengths = 0;
    long long content_length = 0;
    Py_ssize_t count = 0;
    for (;;) {
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            p += 2;
            break;
        }
        const unsigned char *line = p;
        while (p < end && is_tchar[*p]) p++;
        Py_ssize_t nlen = p - line;
        if (nlen == 0 || p == end || *p != ':') goto fall_back;
        const unsigned char *value = ++p;
        while (p < end && *p >= 0x20 && *p < 0x7f) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') goto fall_back;
        const unsigned char *value_end = p;
        p += 2;
        if (field_size > 0 && p - line > field_size) goto fall_back;
        if (max_fields > 0 && ++count > max_fields) goto fall_back;
        while (value < value_end && *value == ' ') value++;
        while (value_end > value && value_end[-1] == ' ') value_end--;

        PyObject *name_obj = PyBytes_FromStringAndSize(NULL, nlen);
        if (name_obj == NULL) goto error;
        char *n = PyBytes_AS_STRING(name_obj);
        for (Py_ssize_t i = 0; i < nlen; i++) {
            unsigned char c = line[i];
            n[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        Py_ssize_t vlen = value_end - value;
        int lowercase_value = 0;
        if (nlen == 4 && memcmp(n, "host", 4) == 0) {
            hosts++;
        } else if (nlen == 14 && memcmp(n, "content-length", 14) == 0) {
            /* One, of digits only, short enough not to overflow; anything else
             * (refused or not) is left to check_request_head. */
            if (lengths++ || vlen < 1 || vlen > 18) special = 1;
            for (Py_ssize_t i = 0; i < vlen && !special; i++) {
                if (value[i] < '0' || value[i] > '9')
                    special = 1;
                else
                    content_length = content_length * 10 + (value[i] - '0');
            }
        } else if (is_special_name(n, nlen)) {
            special = 1;
            /* Transfer-Encoding's value is compared lowercase, as h11 gives it. */
            lowercase_value = nlen == 17;
        }
        PyObject *value_obj = PyBytes_FromStringAndSize((const char *)value, vlen);
        if (value_obj != NULL && lowercase_value) {
            char *v = PyBytes_AS_STRING(value_obj);
            for (Py_ssize_t i = 0; i < vlen; i++)
                if (v[i] >= 'A' && v[i] <= 'Z') v[i] = (char)(v[i] + 32);
        }
        if (value_obj == NULL) {
            Py_DECREF(name_obj);
            goto error;
        }
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(name_obj);
            Py_DECREF(value_obj);
            goto error;
        }
        PyTuple_SET_ITEM(pair, 0, name_obj);
        PyTuple_SET_ITEM(pair, 1, value_obj);
        int failed = PyList_Append(headers, pair);
        Py_DECREF(pair);
        if (failed) goto error;
    }
    if (p != end) goto fall_back;

    PyObject *target_obj = PyBytes_FromStringAndSize((const char *)target, tlen);
    if (target_obj == NULL) goto error;
    PyObject *plain = PyLong_FromLongLong(http_11 && hosts == 1 && !special ? content_length : -1);
    if (plain == NULL) {
        Py_DECREF(target_obj);
        goto error;
    }
    PyObject *result = PyTuple_Pack(5, method, target_obj, version, headers, plain);
    Py_DECREF(plain);
    Py_DECREF(target_obj);
    Py_DECREF(headers);
    return result;

fall_back:
    Py_DECREF(headers);
    Py_RETURN_NONE;
error:
    Py_DECREF(headers);
    return NULL;
}

static int init_request_objects(void) {
    for (int i = 0; i < N_FAST_METHODS; i++) {
        method_objects[i] = PyBytes_FromString(fast_methods[i]);
        if (method_objects[i] == NULL) return -1;
    }
    version_11 = PyUnicode_InternFromString("1.1");
    version_10 = PyUnicode_InternFromString("1.0");
    return version_11 == NULL || version_10 == NULL ? -1 : 0;
}

/* ---- HTTP/2 response heads ------------------------------------------- */

static PyObject *connection_specific; /* frozenset of names HTTP/2 drops */
static PyObject *fields_reference;    /* the pure-Python response_headers */
static PyObject *encode_reference;    /* the pure-Python encode_headers */
static PyObject *static_names;        /* dict[bytes, int]: HPACK static table names */
static PyObject *static_status;       /* dict[bytes, int]: HPACK static table :status values */
static PyObject *status_name;         /* b":status" */

/* response_fields(status, headers, default_headers, default_names)
 *   -> (fields, content_length or None), as response_headers. */
static PyObject *response_fields(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (fields_reference == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "squall._speedups.setup_h2_fields() was not called");
        return NULL;
    }
    if (nargs != 4) return PyObject_Vectorcall(fields_reference, args, (size_t)nargs, NULL);
    PyObject *status = args[0], *headers = args[1], *defaults = args[2], *default_names = args[3];
    if (!PyLong_CheckExact(status) || !(PyList_CheckExact(headers) || PyTuple_CheckExact(headers)) ||
        !PyList_CheckExact(defaults) || !PyFrozenSet_CheckExact(default_names))
        return PyObject_Vectorcall(fields_reference, args, (size_t)nargs, NULL);
    long code = PyLong_AsLong(status);
    if (code == -1 && PyErr_Occurred()) PyErr_Clear();
    if (code < 100 || code > 999) return PyObject_Vectorcall(fields_reference, args, (size_t)nargs, NULL);

    PyObject *fields = PyList_New(0), *given = NULL, *status_value = NULL, *pair = NULL;
    long long content_length = -1;
    if (fields == NULL) return NULL;
    status_value = PyBytes_FromFormat("%ld", code);
    if (status_value == NULL) goto error;
    pair = PyTuple_Pack(2, status_name, status_value);
    Py_CLEAR(status_value);
    if (pair == NULL || PyList_Append(fields, pair) < 0) goto error;
    Py_CLEAR(pair);

    Py_ssize_t count = PySequence_Fast_GET_SIZE(headers);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(headers, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) goto fall_back;
        PyObject *name = PyTuple_GET_ITEM(item, 0), *value = PyTuple_GET_ITEM(item, 1);
        if (!PyBytes_CheckExact(name) || !PyBytes_CheckExact(value)) goto fall_back;
        const char *n = PyBytes_AS_STRING(name), *v = PyBytes_AS_STRING(value);
        Py_ssize_t nlen = PyBytes_GET_SIZE(name), vlen = PyBytes_GET_SIZE(value);
        int upper = 0;
        if (nlen == 0) goto fall_back;
        for (Py_ssize_t j = 0; j < nlen; j++) {
            if (!is_tchar[(unsigned char)n[j]]) goto fall_back;
            upper |= n[j] >= 'A' && n[j] <= 'Z';
        }
        if (memchr(v, '\r', (size_t)vlen) || memchr(v, '\n', (size_t)vlen) || memchr(v, '\0', (size_t)vlen))
            goto fall_back;
        PyObject *lname;
        if (upper) {
            lname = PyBytes_FromStringAndSize(NULL, nlen);
            if (lname == NULL) goto error;
            char *l = PyBytes_AS_STRING(lname);
            for (Py_ssize_t j = 0; j < nlen; j++) l[j] = (char)(n[j] >= 'A' && n[j] <= 'Z' ? n[j] + 32 : n[j]);
        } else {
            lname = Py_NewRef(name);
        }
        int skip = PySet_Contains(connection_specific, lname);
        if (skip < 0) {
            Py_DECREF(lname);
            goto error;
        }
        if (skip) {
            Py_DECREF(lname);
            continue;
        }
        if (nlen == 14 && memcmp(PyBytes_AS_STRING(lname), "content-length", 14) == 0) {
            Py_ssize_t a = 0, b = vlen;
            while (a < b && is_space(v[a])) a++;
            while (b > a && is_space(v[b - 1])) b--;
            if (content_length >= 0 || b == a || b - a > 18) {
                Py_DECREF(lname);
                goto fall_back; /* repeated, empty or huge: the reference decides */
            }
            long long cl = 0;
            for (Py_ssize_t j = a; j < b; j++) {
                if (v[j] < '0' || v[j] > '9') {
                    Py_DECREF(lname);
                    goto fall_back;
                }
                cl = cl * 10 + (v[j] - '0');
            }
            content_length = cl;
        } else {
            int is_default = PySet_Contains(default_names, lname);
            if (is_default < 0 || (is_default && given == NULL && (given = PySet_New(NULL)) == NULL) ||
                (is_default && PySet_Add(given, lname) < 0)) {
                Py_DECREF(lname);
                goto error;
            }
        }
        if (upper) {
            pair = PyTuple_Pack(2, lname, value);
            Py_DECREF(lname);
            if (pair == NULL) goto error;
        } else {
            Py_DECREF(lname);
            pair = Py_NewRef(item);
        }
        if (PyList_Append(fields, pair) < 0) goto error;
        Py_CLEAR(pair);
    }
    Py_ssize_t ndefaults = PyList_GET_SIZE(defaults);
    for (Py_ssize_t i = 0; i < ndefaults; i++) {
        PyObject *item = PyList_GET_ITEM(defaults, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) goto fall_back;
        if (given != NULL) {
            int has = PySet_Contains(given, PyTuple_GET_ITEM(item, 0));
            if (has < 0) goto error;
            if (has) continue;
        }
        if (PyList_Append(fields, item) < 0) goto error;
    }
    Py_XDECREF(given);
    PyObject *length = content_length >= 0 ? PyLong_FromLongLong(content_length) : Py_NewRef(Py_None);
    if (length == NULL) {
        Py_DECREF(fields);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, fields, length);
    Py_DECREF(fields);
    Py_DECREF(length);
    return result;

fall_back:
    Py_DECREF(fields);
    Py_XDECREF(given);
    return PyObject_Vectorcall(fields_reference, args, (size_t)nargs, NULL);
error:
    Py_DECREF(fields);
    Py_XDECREF(given);
    Py_XDECREF(pair);
    return NULL;
}

/* An HPACK integer (RFC 7541 5.1): `first`'s high bits above a `prefix_bits` prefix. */
static char *put_integer(char *out, Py_ssize_t value, int prefix_bits, unsigned char first) {
    Py_ssize_t limit = ((Py_ssize_t)1 << prefix_bits) - 1;
    if (value < limit) {
        *out++ = (char)(first | value);
        return out;
    }
    *out++ = (char)(first | limit);
    value -= limit;
    while (value >= 128) {
        *out++ = (char)((value & 0x7F) | 0x80);
        value >>= 7;
    }
    *out++ = (char)value;
    return out;
}

/* encode_headers(fields) -> bytes: an HPACK block, no dynamic table, no Huffman coding. */
static PyObject *encode_headers(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (encode_reference == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "squall._speedups.setup_hpack() was not called");
        return NULL;
    }
    if (nargs != 1 || !PyList_CheckExact(args[0])) return PyObject_Vectorcall(encode_reference, args, (size_t)nargs, NULL);
    PyObject *fields = args[0];
    Py_ssize_t count = PyList_GET_SIZE(fields), bound = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(fields, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2 || !PyBytes_CheckExact(PyTuple_GET_ITEM(item, 0)) ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(item, 1)))
            return PyObject_Vectorcall(encode_reference, args, (size_t)nargs, NULL);
        /* each integer takes at most 10 bytes, the name's literal flag 1 */
        bound += PyBytes_GET_SIZE(PyTuple_GET_ITEM(item, 0)) + PyBytes_GET_SIZE(PyTuple_GET_ITEM(item, 1)) + 21;
    }
    PyObject *block = PyBytes_FromStringAndSize(NULL, bound);
    if (block == NULL) return NULL;
    char *start = PyBytes_AS_STRING(block), *out = start;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(fields, i);
        PyObject *name = PyTuple_GET_ITEM(item, 0), *value = PyTuple_GET_ITEM(item, 1);
        PyObject *index;
        if (PyBytes_GET_SIZE(name) == 7 && memcmp(PyBytes_AS_STRING(name), ":status", 7) == 0) {
            index = PyDict_GetItemWithError(static_status, value);
            if (index != NULL) {
                *out++ = (char)(0x80 | PyLong_AsLong(index));
                continue;
            }
            if (PyErr_Occurred()) goto error;
        }
        index = PyDict_GetItemWithError(static_names, name);
        if (index != NULL) {
            /* a literal field without indexing, its name by static index */
            out = put_integer(out, PyLong_AsSsize_t(index), 4, 0);
        } else {
            if (PyErr_Occurred()) goto error;
            *out++ = 0;
            out = put_integer(out, PyBytes_GET_SIZE(name), 7, 0);
            memcpy(out, PyBytes_AS_STRING(name), (size_t)PyBytes_GET_SIZE(name));
            out += PyBytes_GET_SIZE(name);
        }
        out = put_integer(out, PyBytes_GET_SIZE(value), 7, 0);
        memcpy(out, PyBytes_AS_STRING(value), (size_t)PyBytes_GET_SIZE(value));
        out += PyBytes_GET_SIZE(value);
    }
    if (_PyBytes_Resize(&block, out - start) < 0) return NULL;
    return block;
error:
    Py_DECREF(block);
    return NULL;
}

/* split_target(target, root_path) -> (path, raw_path, query_string), as
 * squall.protocols.http.h1_request.split_target, for an origin-form target
 * whose path is ASCII without percent-escapes and an empty root path; any
 * other target goes to that reference (its errors included). */
static PyObject *target_reference;
static PyObject *empty_bytes;

static PyObject *split_target(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (target_reference == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "squall._speedups.setup_targets() was not called");
        return NULL;
    }
    if (nargs != 2 || !PyBytes_CheckExact(args[0]) || !PyUnicode_CheckExact(args[1]) ||
        PyUnicode_GET_LENGTH(args[1]) != 0)
        return PyObject_Vectorcall(target_reference, args, (size_t)nargs, NULL);
    PyObject *target = args[0];
    const char *t = PyBytes_AS_STRING(target);
    Py_ssize_t size = PyBytes_GET_SIZE(target), end = 0;
    if (size == 0 || t[0] != '/') return PyObject_Vectorcall(target_reference, args, (size_t)nargs, NULL);
    for (; end < size && t[end] != '?'; end++) {
        unsigned char c = (unsigned char)t[end];
        if (c >= 0x80 || c == '%') return PyObject_Vectorcall(target_reference, args, (size_t)nargs, NULL);
    }
    PyObject *path = PyUnicode_New(end, 127);
    if (path == NULL) return NULL;
    memcpy(PyUnicode_1BYTE_DATA(path), t, (size_t)end);
    PyObject *raw_path, *query;
    if (end == size) {
        raw_path = Py_NewRef(target);
        query = Py_NewRef(empty_bytes);
    } else {
        raw_path = PyBytes_FromStringAndSize(t, end);
        query = PyBytes_FromStringAndSize(t + end + 1, size - end - 1);
    }
    if (raw_path == NULL || query == NULL) {
        Py_DECREF(path);
        Py_XDECREF(raw_path);
        Py_XDECREF(query);
        return NULL;
    }
    PyObject *result = PyTuple_New(3);
    if (result == NULL) {
        Py_DECREF(path);
        Py_DECREF(raw_path);
        Py_DECREF(query);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, path);
    PyTuple_SET_ITEM(result, 1, raw_path);
    PyTuple_SET_ITEM(result, 2, query);
    return result;
}

static PyObject *setup_targets(PyObject *self, PyObject *reference) {
    if (empty_bytes == NULL && (empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL) return NULL;
    Py_XSETREF(target_reference, Py_NewRef(reference));
    Py_RETURN_NONE;
}

static PyObject *setup_h2_fields(PyObject *self, PyObject *args) {
    PyObject *specific, *reference;
    if (!PyArg_ParseTuple(args, "O!O:setup_h2_fields", &PyFrozenSet_Type, &specific, &reference)) return NULL;
    if (status_name == NULL && (status_name = PyBytes_FromString(":status")) == NULL) return NULL;
    Py_XSETREF(connection_specific, Py_NewRef(specific));
    Py_XSETREF(fields_reference, Py_NewRef(reference));
    Py_RETURN_NONE;
}

static PyObject *setup_hpack(PyObject *self, PyObject *args) {
    PyObject *reference, *names, *statuses;
    if (!PyArg_ParseTuple(args, "OO!O!:setup_hpack", &reference, &PyDict_Type, &names, &PyDict_Type, &statuses))
        return NULL;
    Py_XSETREF(encode_reference, Py_NewRef(reference));
    Py_XSETREF(static_names, Py_NewRef(names));
    Py_XSETREF(static_status, Py_NewRef(statuses));
    Py_RETURN_NONE;
}

static PyObject *setup(PyObject *self, PyObject *args) {
    PyObject *lines, *ref;
    if (!PyArg_ParseTuple(args, "O!O:setup", &PyDict_Type, &lines, &ref)) return NULL;
    Py_XSETREF(status_lines, Py_NewRef(lines));
    Py_XSETREF(reference, Py_NewRef(ref));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"build_response_head", (PyCFunction)(void (*)(void))build_response_head, METH_FASTCALL,
     "Compiled squall.protocols.http.response.build_response_head (same arguments, same result)."},
    {"parse_request_head", (PyCFunction)(void (*)(void))parse_request_head, METH_FASTCALL,
     "parse_request_head(head, request_line_size, head_size, fields, field_size): "
     "(method, target, http_version, headers, plain) of a common request head, or None for the pure path."},
    {"response_fields", (PyCFunction)(void (*)(void))response_fields, METH_FASTCALL,
     "Compiled squall.protocols.http2.request.response_headers (same arguments, same result)."},
    {"encode_headers", (PyCFunction)(void (*)(void))encode_headers, METH_FASTCALL,
     "Compiled squall.protocols.http2.frames.encode_headers (same argument, same result)."},
    {"split_target", (PyCFunction)(void (*)(void))split_target, METH_FASTCALL,
     "Compiled squall.protocols.http.h1_request.split_target (same arguments, same result)."},
    {"setup_targets", setup_targets, METH_O, "setup_targets(split_target): the pure path it hands other targets to."},
    {"setup_h2_fields", setup_h2_fields, METH_VARARGS,
     "setup_h2_fields(connection_specific, response_headers): the objects response_fields shares with the pure path."},
    {"setup_hpack", setup_hpack, METH_VARARGS,
     "setup_hpack(encode_headers, static_names, static_status): the objects encode_headers shares with the pure path."},
    {"setup", setup, METH_VARARGS, "setup(status_lines, reference): the objects shared with the pure path."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "squall._speedups", NULL, -1, methods};

PyMODINIT_FUNC PyInit__speedups(void) {
    init_tables();
    if (init_request_objects() < 0) return NULL;
    return PyModule_Create(&module);
}
