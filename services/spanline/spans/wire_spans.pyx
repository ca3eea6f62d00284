# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""OTLP ``TracesData`` wire bytes -> the ``spans`` table's columns, compiled.

Why it exists: the Python builder (``span_build.SpanBuilder``) creates a Python object for
every field it reads and pyarrow converts every value again, ~20 us per span; the writer
must do 50k spans/s on one core next to ClickHouse. Here the wire format is walked in C and
the columns are Arrow buffers from the start: a plain span creates no Python object at all.

It is a *fast subset*, never a second definition of the rules:

* Anything it does not fully understand -- unknown or repeated message fields, groups,
  invalid UTF-8, bad ids, a zero start time, an empty project -- makes :meth:`add` return
  ``-1`` with the batch untouched, and the caller gives the message to the Python builder,
  which accepts it or raises its own error. Error semantics are the reference's by
  construction.
* The GenAI rules stay in Python: key classification (``genai_fields.key_info``, once per
  key), field resolution (``genai_fields.resolve``, once per GenAI span), pricing and the
  claim check run through the same functions as the Python builder. Spans that need the
  general path (events, links, flattened message lists, repeated keys, odd payload floats)
  are built by the Python builder's own ``_general`` through a callback.
* Only the canonical KeyValue encoding (key, then one string/int/double/bool or an array of
  strings) is decoded here; other values go through ``otlp_mirror.decode_key_value``.

``tests/unit/writer/test_wire_spans.py`` runs it against the Python reference on randomised
corpora and on mutated (garbage) messages.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Contains
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdio cimport snprintf
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset, strlen

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object, Py_ssize_t*) except NULL
    char* PyOS_double_to_string(double, char, int, int, int*) except NULL
    void PyMem_Free(void*)
    int Py_DTSF_ADD_DOT_0

# ---------------------------------------------------------------- growable buffers

cdef struct Buf:
    char* p
    Py_ssize_t n
    Py_ssize_t cap
    Py_ssize_t hint   # bytes of the batch last handed over: the next one starts at that size

cdef int buf_grow(Buf* b, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = b.cap * 2 if b.cap else max(4096, b.hint + b.hint // 4)
    while cap < b.n + need:
        cap *= 2
    cdef char* q = <char*>realloc(b.p, cap)
    if q == NULL:
        raise MemoryError()
    b.p = q
    b.cap = cap
    return 0

cdef enum:
    BUF_KEEP = 4 << 20   # a buffer up to this size is kept between batches whatever it held

cdef inline int buf_put(Buf* b, const char* s, Py_ssize_t n) except -1:
    if b.n + n > b.cap:
        buf_grow(b, n)
    if n:
        memcpy(b.p + b.n, s, n)
    b.n += n
    return 0

cdef inline int buf_u64(Buf* b, uint64_t v) except -1:
    return buf_put(b, <const char*>&v, 8)

cdef inline int buf_i32(Buf* b, int32_t v) except -1:
    return buf_put(b, <const char*>&v, 4)

cdef inline int buf_byte(Buf* b, char v) except -1:
    return buf_put(b, &v, 1)

# A string column: UTF-8 bytes plus Arrow int32 offsets (offsets start with one 0).
cdef struct StrCol:
    Buf data
    Buf offs

cdef inline int str_end(StrCol* c) except -1:
    if c.data.n > 0x7FFFFFFF:
        raise OverflowError("a string column of one batch exceeds 2 GiB; lower writer.batch_max_bytes")
    return buf_i32(&c.offs, <int32_t>c.data.n)

cdef inline int str_add(StrCol* c, const char* s, Py_ssize_t n) except -1:
    buf_put(&c.data, s, n)
    return str_end(c)

cdef class _Owned:
    """Memory a buffer handed over (``WireSpans.buffers(hand_over=True)``): exposed through
    the buffer protocol, so ``pa.py_buffer`` wraps it without a copy, and freed when the
    last Arrow buffer over it goes."""

    cdef char* p
    cdef Py_ssize_t n

    def __len__(self):
        return self.n

    def __getbuffer__(self, Py_buffer* view, int flags):
        view.buf = <void*>self.p
        view.obj = self
        view.len = self.n
        view.readonly = 1
        view.itemsize = 1
        view.format = NULL
        view.ndim = 1
        view.shape = &self.n
        view.strides = NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer* view):
        pass

    def __dealloc__(self):
        free(self.p)


cdef object buf_hand_over(Buf* b):
    """The buffer's bytes as an :class:`_Owned` (no copy); the buffer starts empty again.

    The capacity beyond ``n`` goes along: blocks of 1 MiB or more are mapped on their own
    (writer/process_memory.py), so its pages that were never written are not resident."""
    if b.n == 0:
        return b""
    cdef _Owned out = _Owned.__new__(_Owned)
    out.p = b.p
    out.n = b.n
    b.hint = b.n
    b.p = NULL
    b.n = 0
    b.cap = 0
    return out


cdef object buf_out(Buf* b, bint hand_over):
    """A column buffer for ``buffers()``: handed over (no copy) or copied."""
    return buf_hand_over(b) if hand_over else PyBytes_FromStringAndSize(b.p, b.n)


cdef tuple str_spec(StrCol* c, bint hand_over):
    return ("str", buf_out(&c.offs, hand_over), buf_out(&c.data, hand_over))


cdef tuple map_spec(Buf* offs, StrCol* keys, StrCol* vals, bint hand_over):
    return (
        "map", buf_out(offs, hand_over), buf_out(&keys.offs, hand_over), buf_out(&keys.data, hand_over),
        buf_out(&vals.offs, hand_over), buf_out(&vals.data, hand_over),
    )


cdef void buf_reset(Buf* b) noexcept:
    """Empty the buffer; give its memory back when the batch now ending used under a quarter
    of it (one huge batch must not pin its size for the life of the writer)."""
    if b.cap > BUF_KEEP and b.n * 4 < b.cap:
        free(b.p)
        b.p = NULL
        b.cap = 0
    b.n = 0

cdef int str_reset(StrCol* c) except -1:
    buf_reset(&c.data)
    buf_reset(&c.offs)
    return buf_i32(&c.offs, 0)

cdef void str_free(StrCol* c) noexcept:
    free(c.data.p)
    free(c.offs.p)

cdef int str_add_py(StrCol* c, object text) except -1:
    cdef Py_ssize_t n
    cdef const char* s = PyUnicode_AsUTF8AndSize(text, &n)
    return str_add(c, s, n)

# An 8-byte column (uint64, int64 or float64) with one validity byte per row.
cdef struct NumCol:
    Buf vals
    Buf valid

cdef inline int num_add(NumCol* c, uint64_t v, bint ok) except -1:
    buf_u64(&c.vals, v)
    return buf_byte(&c.valid, 1 if ok else 0)

cdef inline int num_add_f(NumCol* c, double v, bint ok) except -1:
    cdef uint64_t bits
    memcpy(&bits, &v, 8)
    return num_add(c, bits, ok)

# ---------------------------------------------------------------- columns

# per-row string columns, in SPAN_COLUMNS order
STRING_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "trace_state", "name", "kind", "status_code",
    "status_message", "genai_convention", "genai_span_kind", "operation", "provider",
    "request_model", "response_model", "pricing_version", "conversation_id", "user_id",
    "agent_name", "agent_id", "tool_name", "tool_call_id", "input_messages", "output_messages",
    "system_instructions", "tool_arguments", "tool_result", "events", "links",
)
cdef enum:
    S_TRACE = 0
cdef enum:
    S_SPAN = 1
cdef enum:
    S_PARENT = 2
cdef enum:
    S_STATE = 3
cdef enum:
    S_NAME = 4
cdef enum:
    S_KIND = 5
cdef enum:
    S_STATUS = 6
cdef enum:
    S_STATUS_MSG = 7
cdef enum:
    S_CONV = 8          # genai_convention .. tool_call_id follow resolve()'s order except pricing
cdef enum:
    S_PRICING = 14
cdef enum:
    S_PAYLOAD = 21      # input_messages .. tool_result
cdef enum:
    S_EVENTS = 26
cdef enum:
    S_LINKS = 27
cdef enum:
    NS = 28

# per-row 8-byte columns: (name, arrow kind) -- "ts" int64 ns, "u64", "f64"
NUMBER_COLUMNS = (
    ("start_time", "ts"), ("end_time", "ts"), ("duration_ns", "u64"),
    ("input_tokens", "u64"), ("output_tokens", "u64"), ("cached_input_tokens", "u64"),
    ("reasoning_tokens", "u64"), ("total_tokens", "u64"), ("cost_usd", "f64"), ("ttft_ms", "f64"),
    ("input_messages_bytes", "u64"), ("output_messages_bytes", "u64"),
    ("system_instructions_bytes", "u64"), ("tool_arguments_bytes", "u64"), ("tool_result_bytes", "u64"),
)
cdef enum:
    N_START = 0
cdef enum:
    N_END = 1
cdef enum:
    N_DURATION = 2
cdef enum:
    N_TOKENS = 3        # input, output, cached, reasoning, total
cdef enum:
    N_COST = 8
cdef enum:
    N_TTFT = 9
cdef enum:
    N_PAYLOAD_BYTES = 10
cdef enum:
    NN = 15

# genai_fields' key bits and convention names, and span_build's odd-payload bit: copies for C,
# checked against the Python ones when span_build imports this module (KEY_BITS, CONVENTIONS)
cdef enum:
    F_OI = 1
    F_TL = 2
    F_OTEL = 4
    F_FLAT = 8
    F_PAYLOAD = 16
    F_ODD = 256
    MAX_SLOTS = 64

KEY_BITS = {"F_OI": F_OI, "F_TL": F_TL, "F_OTEL": F_OTEL, "F_FLAT": F_FLAT, "F_PAYLOAD": F_PAYLOAD, "F_ODD": F_ODD}
CONVENTIONS = ("openinference", "openllmetry", "otel")

# ---------------------------------------------------------------- wire reading

cdef enum:
    OK = 0
cdef enum:
    FALLBACK = 1        # not ours to decide: the Python builder takes the message

cdef inline Py_ssize_t read_varint(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, uint64_t* out) noexcept:
    """Next position after a varint at ``pos``, or -1 (truncated or longer than 10 bytes)."""
    cdef uint64_t result = 0
    cdef int shift = 0
    cdef uint8_t byte
    while pos < end:
        byte = p[pos]
        pos += 1
        result |= (<uint64_t>(byte & 0x7F)) << shift
        if byte < 0x80:
            out[0] = result
            return pos
        shift += 7
        if shift == 63 and pos < end and p[pos] > 1:
            return -1  # more than 64 bits: the runtime decides
        if shift >= 70:
            return -1
    return -1

cdef inline Py_ssize_t read_len(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t* size) noexcept:
    """Position of a length-delimited field's payload (its size in ``size``), or -1."""
    cdef uint64_t n
    pos = read_varint(p, pos, end, &n)
    if pos < 0 or n > <uint64_t>(end - pos):
        return -1
    size[0] = <Py_ssize_t>n
    return pos

cdef bint valid_utf8(const uint8_t* s, Py_ssize_t n) noexcept:
    """Strict UTF-8 as Python decodes it: no overlongs, surrogates or code points > U+10FFFF."""
    cdef Py_ssize_t i = 0
    cdef uint64_t word
    cdef uint8_t c, c1
    while i < n:
        if i + 8 <= n:
            memcpy(&word, s + i, 8)
            if (word & 0x8080808080808080ULL) == 0:
                i += 8
                continue
        c = s[i]
        if c < 0x80:
            i += 1
        elif c < 0xC2:
            return False
        elif c < 0xE0:
            if i + 1 >= n or (s[i + 1] & 0xC0) != 0x80:
                return False
            i += 2
        elif c < 0xF0:
            if i + 2 >= n:
                return False
            c1 = s[i + 1]
            if (c1 & 0xC0) != 0x80 or (s[i + 2] & 0xC0) != 0x80:
                return False
            if c == 0xE0 and c1 < 0xA0:
                return False
            if c == 0xED and c1 >= 0xA0:
                return False
            i += 3
        elif c < 0xF5:
            if i + 3 >= n:
                return False
            c1 = s[i + 1]
            if (c1 & 0xC0) != 0x80 or (s[i + 2] & 0xC0) != 0x80 or (s[i + 3] & 0xC0) != 0x80:
                return False
            if c == 0xF0 and c1 < 0x90:
                return False
            if c == 0xF4 and c1 >= 0x90:
                return False
            i += 4
        else:
            return False
    return True

cdef inline Py_ssize_t read_text(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t* size) noexcept:
    """As :func:`read_len` for a proto3 ``string``: -1 also when it is not strict UTF-8."""
    pos = read_len(p, pos, end, size)
    if pos < 0 or not valid_utf8(p + pos, size[0]):
        return -1
    return pos

cdef struct Small:
    Py_ssize_t a_off, a_len, b_off, b_len
    uint64_t v

cdef int read_small(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, uint64_t tag_a, uint64_t tag_b,
                    uint64_t tag_v, Small* out) noexcept:
    """A message of up to two strings and one varint (scope, status): OK, or FALLBACK for any other field."""
    cdef uint64_t tag = 0
    cdef Py_ssize_t size = 0
    while pos < end:
        pos = read_varint(p, pos, end, &tag)
        if pos < 0:
            return FALLBACK
        if tag == tag_a or tag == tag_b:
            pos = read_text(p, pos, end, &size)
            if pos < 0:
                return FALLBACK
            if tag == tag_a:
                out.a_off, out.a_len = pos, size
            else:
                out.b_off, out.b_len = pos, size
            pos += size
        elif tag == tag_v:
            pos = read_varint(p, pos, end, &out.v)
            if pos < 0:
                return FALLBACK
        else:
            return FALLBACK
    return OK

cdef const char* HEX = b"0123456789abcdef"

cdef int add_hex(StrCol* c, const uint8_t* raw, Py_ssize_t n) except -1:
    cdef Py_ssize_t i
    if c.data.n + 2 * n > c.data.cap:
        buf_grow(&c.data, 2 * n)
    cdef char* out = c.data.p + c.data.n
    for i in range(n):
        out[2 * i] = HEX[raw[i] >> 4]
        out[2 * i + 1] = HEX[raw[i] & 15]
    c.data.n += 2 * n
    return str_end(c)

cdef bint all_zero(const uint8_t* raw, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    for i in range(n):
        if raw[i]:
            return False
    return True

cdef int json_string(Buf* b, const uint8_t* s, Py_ssize_t n) except -1:
    """``json.encoder.encode_basestring``: quotes, backslash and C0 controls escaped."""
    cdef Py_ssize_t i
    cdef uint8_t c
    cdef char esc[8]
    buf_byte(b, b'"')
    for i in range(n):
        c = s[i]
        if c == b'"':
            buf_put(b, b'\\"', 2)
        elif c == b'\\':
            buf_put(b, b'\\\\', 2)
        elif c >= 0x20:
            buf_byte(b, <char>c)
        elif c == b'\n':
            buf_put(b, b'\\n', 2)
        elif c == b'\r':
            buf_put(b, b'\\r', 2)
        elif c == b'\t':
            buf_put(b, b'\\t', 2)
        elif c == 8:
            buf_put(b, b'\\b', 2)
        elif c == 12:
            buf_put(b, b'\\f', 2)
        else:
            snprintf(esc, 8, b"\\u%04x", c)
            buf_put(b, esc, 6)
    return buf_byte(b, b'"')

# ---------------------------------------------------------------- attribute keys

# Classified keys, by their bytes: open addressing, cleared when full (between messages).
cdef struct KeySlot:
    char* key
    Py_ssize_t len
    uint64_t hash
    PyObject* pykey     # the key as str (owned reference)
    int slot
    int prio
    int bits
    uint64_t stamp      # the span that last used the key: a repeat within a span is seen here

cdef enum:
    KEY_TABLE = 131072
cdef enum:
    KEY_LIMIT = 50000

cdef inline uint64_t fnv1a(const uint8_t* s, Py_ssize_t n) noexcept:
    cdef uint64_t h = 1469598103934665603ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ s[i]) * 1099511628211ULL
    return h

# ---------------------------------------------------------------- one attribute, decoded

cdef enum:
    V_NONE = 0
cdef enum:
    V_STR = 1
cdef enum:
    V_INT = 2
cdef enum:
    V_DOUBLE = 3
cdef enum:
    V_BOOL = 4
cdef enum:
    V_STRARR = 5
cdef enum:
    V_PY = 6            # decoded by otlp_mirror.decode_key_value (Python objects)

cdef struct Attr:
    KeySlot* info
    int bits
    int vtype
    Py_ssize_t toff      # map text: offset into the message (V_STR) or into scratch
    Py_ssize_t tlen
    bint text_in_scratch

cdef struct Span:
    Py_ssize_t trace_off, trace_len, span_off, span_len, parent_off, parent_len
    Py_ssize_t state_off, state_len, name_off, name_len, msg_off, msg_len
    uint64_t start, end
    int64_t kind, code
    bint extras          # events or links: the general path
    int n_attrs


cdef class WireSpans:
    """A batch of ``spans`` rows in Arrow buffers; see the module docstring."""

    cdef StrCol s[NS]
    cdef NumCol num[NN]
    cdef Buf attr_offs      # int32 per row + 1: entries of the attributes map
    cdef StrCol attr_keys
    cdef StrCol attr_vals
    cdef Buf reason_offs    # int32 per row + 1
    cdef StrCol reasons
    cdef Py_ssize_t rows
    cdef Py_ssize_t attr_entries
    cdef Py_ssize_t reason_entries
    # rollback marks
    cdef Py_ssize_t m_s[NS][2]
    cdef Py_ssize_t m_num[NN][2]
    cdef Py_ssize_t m_misc[9]
    # attribute decoding
    cdef KeySlot* keys
    cdef Py_ssize_t n_keys
    cdef uint64_t span_stamp
    cdef Attr* attrs
    cdef Py_ssize_t attrs_cap
    cdef Py_ssize_t* attr_pos    # (offset, length) pairs of the span's KeyValues
    cdef Buf scratch
    cdef int prios[MAX_SLOTS]
    # Python collaborators (span_build wires them)
    cdef object key_info, resolve, decode_key_value, general, resource_of, price_of, count_unknown
    cdef object offload
    cdef Py_ssize_t offload_threshold
    cdef str ref_prefix
    cdef int n_slots
    cdef str pricing_version
    cdef dict prices
    cdef object unpriced
    cdef tuple kind_names, status_names
    # block columns (one value per ScopeSpans block), as Python lists
    cdef public list run_ends, run_project, run_service, run_scope_name, run_scope_version
    cdef public list run_ingested, run_resource, res_counts, res_keys, res_values

    def __cinit__(self):
        self.keys = <KeySlot*>malloc(KEY_TABLE * sizeof(KeySlot))
        if self.keys == NULL:
            raise MemoryError()
        memset(self.keys, 0, KEY_TABLE * sizeof(KeySlot))
        self.attrs_cap = 64
        self.attrs = <Attr*>malloc(self.attrs_cap * sizeof(Attr))
        self.attr_pos = <Py_ssize_t*>malloc(self.attrs_cap * 2 * sizeof(Py_ssize_t))
        if self.attrs == NULL or self.attr_pos == NULL:
            raise MemoryError()

    def __init__(self, *, key_info, resolve, decode_key_value, general, resource_of, price_of,
                 count_unknown, prices, unpriced, pricing_version, offload, offload_threshold,
                 ref_prefix, n_slots, kind_names, status_names):
        if n_slots > MAX_SLOTS:
            raise ValueError(f"{n_slots} GenAI slots, at most {MAX_SLOTS}")
        self.key_info = key_info
        self.resolve = resolve
        self.decode_key_value = decode_key_value
        self.general = general
        self.resource_of = resource_of
        self.price_of = price_of
        self.count_unknown = count_unknown
        self.prices = prices
        self.unpriced = unpriced
        self.pricing_version = pricing_version
        self.offload = offload
        self.offload_threshold = offload_threshold
        self.ref_prefix = ref_prefix
        self.n_slots = n_slots
        self.kind_names = tuple(kind_names)
        self.status_names = tuple(status_names)
        self.clear()

    def __dealloc__(self):
        cdef int i
        for i in range(NS):
            free(self.s[i].data.p)
            free(self.s[i].offs.p)
        for i in range(NN):
            free(self.num[i].vals.p)
            free(self.num[i].valid.p)
        str_free(&self.attr_keys)
        str_free(&self.attr_vals)
        str_free(&self.reasons)
        free(self.attr_offs.p)
        free(self.reason_offs.p)
        free(self.scratch.p)
        if self.keys != NULL:
            self._clear_keys()
            free(self.keys)
        free(self.attrs)
        free(self.attr_pos)

    cdef void _clear_keys(self) noexcept:
        cdef Py_ssize_t i
        for i in range(KEY_TABLE):
            if self.keys[i].key != NULL:
                free(self.keys[i].key)
                Py_DECREF(<object>self.keys[i].pykey)
        memset(self.keys, 0, KEY_TABLE * sizeof(KeySlot))
        self.n_keys = 0

    def clear(self):
        cdef int i
        for i in range(NS):
            str_reset(&self.s[i])
        for i in range(NN):
            buf_reset(&self.num[i].vals)
            buf_reset(&self.num[i].valid)
        str_reset(&self.attr_keys)
        str_reset(&self.attr_vals)
        str_reset(&self.reasons)
        buf_reset(&self.attr_offs)
        buf_i32(&self.attr_offs, 0)
        buf_reset(&self.reason_offs)
        buf_i32(&self.reason_offs, 0)
        buf_reset(&self.scratch)
        self.rows = self.attr_entries = self.reason_entries = 0
        self.run_ends, self.run_project, self.run_service = [], [], []
        self.run_scope_name, self.run_scope_version, self.run_ingested, self.run_resource = [], [], [], []
        self.res_counts, self.res_keys, self.res_values = [], [], []

    def __len__(self):
        return self.rows

    @property
    def capacity(self):
        """Bytes allocated for the columns (what the builder holds between batches)."""
        cdef Py_ssize_t total = self.scratch.cap + self.attr_offs.cap + self.reason_offs.cap
        cdef int i
        for i in range(NS):
            total += self.s[i].data.cap + self.s[i].offs.cap
        for i in range(NN):
            total += self.num[i].vals.cap + self.num[i].valid.cap
        total += self.attr_keys.data.cap + self.attr_keys.offs.cap + self.attr_vals.data.cap
        total += self.attr_vals.offs.cap + self.reasons.data.cap + self.reasons.offs.cap
        return total

    # ------------------------------------------------------------ rollback

    cdef void _mark(self) noexcept:
        cdef int i
        for i in range(NS):
            self.m_s[i][0] = self.s[i].data.n
            self.m_s[i][1] = self.s[i].offs.n
        for i in range(NN):
            self.m_num[i][0] = self.num[i].vals.n
            self.m_num[i][1] = self.num[i].valid.n
        self.m_misc[0] = self.rows
        self.m_misc[1] = self.attr_offs.n
        self.m_misc[2] = self.attr_keys.data.n
        self.m_misc[3] = self.attr_keys.offs.n
        self.m_misc[4] = self.attr_vals.data.n
        self.m_misc[5] = self.attr_vals.offs.n
        self.m_misc[6] = self.reason_offs.n
        self.m_misc[7] = self.reasons.data.n
        self.m_misc[8] = self.reasons.offs.n

    cdef void _rollback(self, Py_ssize_t runs, Py_ssize_t resources, Py_ssize_t res_entries) noexcept:
        cdef int i
        for i in range(NS):
            self.s[i].data.n = self.m_s[i][0]
            self.s[i].offs.n = self.m_s[i][1]
        for i in range(NN):
            self.num[i].vals.n = self.m_num[i][0]
            self.num[i].valid.n = self.m_num[i][1]
        self.rows = self.m_misc[0]
        self.attr_offs.n = self.m_misc[1]
        self.attr_keys.data.n = self.m_misc[2]
        self.attr_keys.offs.n = self.m_misc[3]
        self.attr_vals.data.n = self.m_misc[4]
        self.attr_vals.offs.n = self.m_misc[5]
        self.reason_offs.n = self.m_misc[6]
        self.reasons.data.n = self.m_misc[7]
        self.reasons.offs.n = self.m_misc[8]
        self.attr_entries = (self.attr_keys.offs.n // 4) - 1
        self.reason_entries = (self.reasons.offs.n // 4) - 1
        for lst in (self.run_ends, self.run_project, self.run_service, self.run_scope_name,
                    self.run_scope_version, self.run_ingested, self.run_resource):
            del lst[runs:]
        del self.res_counts[resources:]
        del self.res_keys[res_entries:]
        del self.res_values[res_entries:]

    # ------------------------------------------------------------ entry point

    def add(self, bytes value, str project_id, received_at_ns):
        """Rows added from one serialized ``TracesData``; -1 or -2: the Python builder decides.

        -1: the message is outside the fast subset (see the module docstring); -2: building
        it raised (a bad value, or an object store failure): the Python builder meets the same
        problem and raises its own error, so errors are never the compiled path's to define.
        All or nothing: on a negative result the batch is as it was.
        """
        if not project_id:
            return -1
        if self.n_keys >= KEY_LIMIT:
            self._clear_keys()
        cdef Py_ssize_t runs = len(self.run_ends)
        cdef Py_ssize_t resources = len(self.res_counts)
        cdef Py_ssize_t res_entries = len(self.res_keys)
        cdef Py_ssize_t before = self.rows
        cdef int rc
        self._mark()
        try:
            rc = self._message(value, project_id, received_at_ns)
        except Exception:
            self._rollback(runs, resources, res_entries)
            return -2
        except BaseException:
            self._rollback(runs, resources, res_entries)
            raise
        if rc != OK:
            self._rollback(runs, resources, res_entries)
            return -1
        return self.rows - before

    cdef int _message(self, bytes value, str project_id, object received_at_ns) except -1:
        cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(value)
        cdef Py_ssize_t end = PyBytes_GET_SIZE(value)
        cdef Py_ssize_t pos = 0, size = 0
        cdef uint64_t tag = 0
        cdef int ri = 0
        cdef int rc
        while pos < end:
            pos = read_varint(p, pos, end, &tag)
            if pos < 0 or tag != 0x0A:
                return FALLBACK
            pos = read_len(p, pos, end, &size)
            if pos < 0:
                return FALLBACK
            rc = self._resource_spans(value, p, pos, pos + size, ri, project_id, received_at_ns)
            if rc != OK:
                return rc
            pos += size
            ri += 1
        return OK

    cdef int _resource_spans(self, bytes value, const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, int ri,
                             str project_id, object received_at_ns) except -1:
        cdef Py_ssize_t size = 0, scan = pos
        cdef uint64_t tag = 0
        cdef Py_ssize_t res_off = -1, res_len = 0
        cdef int rc, si = 0
        # first the resource (it may follow the scope blocks on the wire)
        while scan < end:
            scan = read_varint(p, scan, end, &tag)
            if scan < 0 or (tag != 0x0A and tag != 0x12 and tag != 0x1A):
                return FALLBACK
            scan = read_len(p, scan, end, &size)
            if scan < 0:
                return FALLBACK
            if tag == 0x0A:
                if res_off >= 0:
                    return FALLBACK  # a repeated message field merges: the runtime's business
                res_off, res_len = scan, size
            elif tag == 0x1A and not valid_utf8(p + scan, size):
                return FALLBACK
            scan += size
        resource = b"" if res_off < 0 else value[res_off:res_off + res_len]
        got = self.resource_of(resource)
        if got is None:
            return FALLBACK
        service, keys, values = got
        cdef Py_ssize_t resource_index = len(self.res_counts)
        self.res_counts.append(len(keys))
        self.res_keys.extend(keys)
        self.res_values.extend(values)
        while pos < end:
            pos = read_varint(p, pos, end, &tag)
            pos = read_len(p, pos, end, &size)
            if tag == 0x12:
                rc = self._scope_spans(value, p, pos, pos + size, ri, si, project_id, service,
                                       resource_index, received_at_ns)
                if rc != OK:
                    return rc
                si += 1
            pos += size
        return OK

    cdef int _scope_spans(self, bytes value, const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, int ri, int si,
                          str project_id, str service, Py_ssize_t resource_index,
                          object received_at_ns) except -1:
        cdef Py_ssize_t size = 0, scan = pos
        cdef uint64_t tag = 0
        cdef Small scope
        cdef bint seen_scope = False
        cdef int rc, pi = 0
        cdef Py_ssize_t block_start = self.rows
        memset(&scope, 0, sizeof(Small))
        while scan < end:
            scan = read_varint(p, scan, end, &tag)
            if scan < 0:
                return FALLBACK
            if tag != 0x0A and tag != 0x12 and tag != 0x1A:
                return FALLBACK
            scan = read_len(p, scan, end, &size)
            if scan < 0:
                return FALLBACK
            if tag == 0x0A:
                if seen_scope:
                    return FALLBACK
                seen_scope = True
                # InstrumentationScope: name, version, dropped_attributes_count; anything
                # else (attributes) goes to the runtime
                if read_small(p, scan, scan + size, 0x0A, 0x12, 0x20, &scope) != OK:
                    return FALLBACK
                scan += size
                continue
            if tag == 0x1A and not valid_utf8(p + scan, size):
                return FALLBACK
            scan += size
        while pos < end:
            pos = read_varint(p, pos, end, &tag)
            pos = read_len(p, pos, end, &size)
            if tag == 0x12:
                rc = self._span(value, p, pos, pos + size, ri, si, pi)
                if rc != OK:
                    return rc
                pi += 1
            pos += size
        if self.rows > block_start:
            self.run_ends.append(self.rows)
            self.run_project.append(project_id)
            self.run_service.append(service)
            self.run_scope_name.append(PyUnicode_DecodeUTF8(<const char*>p + scope.a_off, scope.a_len, NULL))
            self.run_scope_version.append(PyUnicode_DecodeUTF8(<const char*>p + scope.b_off, scope.b_len, NULL))
            self.run_ingested.append(received_at_ns)
            self.run_resource.append(resource_index)
        return OK

    # ------------------------------------------------------------ one span

    cdef int _span(self, bytes value, const uint8_t* p, Py_ssize_t pos, Py_ssize_t end,
                   int ri, int si, int pi) except -1:
        cdef Span sp
        cdef uint64_t tag = 0, v = 0
        cdef Py_ssize_t size = 0
        cdef Small status
        cdef bint seen_status = False
        memset(&sp, 0, sizeof(Span))
        while pos < end:
            pos = read_varint(p, pos, end, &tag)
            if pos < 0:
                return FALLBACK
            if tag == 0x39 or tag == 0x41:  # start, end: fixed64
                if pos + 8 > end:
                    return FALLBACK
                memcpy(&v, p + pos, 8)
                if tag == 0x39:
                    sp.start = v
                else:
                    sp.end = v
                pos += 8
            elif tag == 0x85:  # flags (field 16): fixed32
                if pos + 4 > end:
                    return FALLBACK
                pos += 4
            elif tag == 0x30 or tag == 0x50 or tag == 0x60 or tag == 0x70:  # kind, dropped counts
                pos = read_varint(p, pos, end, &v)
                if pos < 0:
                    return FALLBACK
                if tag == 0x30:
                    sp.kind = <int32_t>v  # an int32 enum: the low 32 bits, signed
            elif (tag & 7) == 2:
                pos = read_len(p, pos, end, &size)
                if pos < 0:
                    return FALLBACK
                if tag == 0x4A:  # attributes
                    if sp.n_attrs >= self.attrs_cap:
                        self._grow_attrs()
                    self.attr_pos[2 * sp.n_attrs] = pos
                    self.attr_pos[2 * sp.n_attrs + 1] = size
                    sp.n_attrs += 1
                elif tag == 0x0A:
                    sp.trace_off, sp.trace_len = pos, size
                elif tag == 0x12:
                    sp.span_off, sp.span_len = pos, size
                elif tag == 0x22:
                    sp.parent_off, sp.parent_len = pos, size
                elif tag == 0x1A or tag == 0x2A:
                    if not valid_utf8(p + pos, size):
                        return FALLBACK
                    if tag == 0x1A:
                        sp.state_off, sp.state_len = pos, size
                    else:
                        sp.name_off, sp.name_len = pos, size
                elif tag == 0x5A or tag == 0x6A:  # events, links
                    sp.extras = True
                elif tag == 0x7A:  # status: message (2), code (3)
                    if seen_status:
                        return FALLBACK
                    seen_status = True
                    memset(&status, 0, sizeof(Small))
                    if read_small(p, pos, pos + size, 0x12, 0x12, 0x18, &status) != OK:
                        return FALLBACK
                    sp.msg_off, sp.msg_len = status.a_off, status.a_len
                    sp.code = <int32_t>status.v
                else:
                    return FALLBACK
                pos += size
            else:
                return FALLBACK
        # ids and times the Python builder would reject (or treat specially): let it
        if sp.trace_len != 16 or all_zero(p + sp.trace_off, 16):
            return FALLBACK
        if sp.span_len != 8 or all_zero(p + sp.span_off, 8):
            return FALLBACK
        if sp.parent_len != 0 and sp.parent_len != 8:
            return FALLBACK
        if sp.start == 0 or sp.start > 0x7FFFFFFFFFFFFFFFULL or sp.end > 0x7FFFFFFFFFFFFFFFULL:
            return FALLBACK  # past DateTime64(9): the Python builder rejects the message
        if sp.end < sp.start:
            sp.end = sp.start
        return self._row(value, p, &sp, ri, si, pi)

    cdef void _grow_attrs(self) except *:
        cdef Py_ssize_t cap = self.attrs_cap * 2
        cdef Attr* a = <Attr*>realloc(self.attrs, cap * sizeof(Attr))
        if a == NULL:
            raise MemoryError()
        self.attrs = a
        cdef Py_ssize_t* q = <Py_ssize_t*>realloc(self.attr_pos, cap * 2 * sizeof(Py_ssize_t))
        if q == NULL:
            raise MemoryError()
        self.attr_pos = q
        self.attrs_cap = cap

    cdef KeySlot* _key(self, const uint8_t* k, Py_ssize_t n, object pykey) except NULL:
        """The classification of a key (``pykey`` may be None: decoded here when new)."""
        cdef uint64_t h = fnv1a(k, n)
        cdef Py_ssize_t i = <Py_ssize_t>(h & (KEY_TABLE - 1))
        cdef KeySlot* e
        while True:
            e = &self.keys[i]
            if e.key == NULL:
                break
            if e.hash == h and e.len == n and memcmp(e.key, k, n) == 0:
                return e
            i = (i + 1) & (KEY_TABLE - 1)
        if self.n_keys >= KEY_TABLE // 2:
            # one message with tens of thousands of new keys: probing would degrade (and a full
            # table never ends it); the Python builder takes the message (add() returns -2)
            raise OverflowError("attribute key table full")
        if pykey is None:
            pykey = PyUnicode_DecodeUTF8(<const char*>k, n, NULL)
        slot, prio, bits = self.key_info(pykey)
        e.key = <char*>malloc(n if n else 1)
        if e.key == NULL:
            raise MemoryError()
        memcpy(e.key, k, n)
        e.len = n
        e.hash = h
        Py_INCREF(pykey)
        e.pykey = <PyObject*>pykey
        e.slot = slot
        e.prio = prio
        e.bits = bits
        e.stamp = 0
        self.n_keys += 1
        return e

    cdef int _decode(self, const uint8_t* p, Py_ssize_t pos, Py_ssize_t size, Attr* a,
                     list values, bint* dup) except -1:
        """One KeyValue: classify its key, note its map text, offer its value to its slot."""
        cdef Py_ssize_t end = pos + size, kpos = 0, klen = 0, vpos, vlen = 0, tlen = 0
        cdef int64_t iv
        cdef double dv
        cdef int vtype = V_PY
        cdef KeySlot* info
        obj = None
        a.toff = a.tlen = 0
        a.text_in_scratch = False
        # canonical: 0A key [12 AnyValue(one field)]
        if size >= 2 and p[pos] == 0x0A:
            kpos = read_len(p, pos + 1, end, &klen)
            if kpos >= 0 and valid_utf8(p + kpos, klen):
                vpos = kpos + klen
                if vpos == end:
                    vtype = V_NONE
                elif p[vpos] == 0x12:
                    vpos = read_len(p, vpos + 1, end, &vlen)
                    if vpos >= 0 and vpos + vlen == end:
                        vtype = self._scalar(p, vpos, vlen, a)
        if vtype == V_PY:
            key, text_obj, obj = self.decode_key_value(PyBytes_FromStringAndSize(<const char*>p + pos, size))
            kp = PyUnicode_AsUTF8AndSize(key, &klen)
            info = self._key(<const uint8_t*>kp, klen, key)
            a.toff = self.scratch.n
            tp = PyUnicode_AsUTF8AndSize(text_obj, &tlen)
            buf_put(&self.scratch, tp, tlen)
            a.tlen = tlen
            a.text_in_scratch = True
        else:
            info = self._key(p + kpos, klen, None)
        a.info = info
        a.vtype = vtype
        a.bits = info.bits
        if info.stamp == self.span_stamp:
            dup[0] = True
        info.stamp = self.span_stamp
        if info.bits & F_PAYLOAD and (vtype == V_DOUBLE or (vtype == V_PY and type(obj) is float)):
            a.bits |= F_ODD  # payload text of NaN/inf differs from map text: general path
        if info.slot < 0 or info.prio >= self.prios[info.slot]:
            return 0
        # the value as Python, only for keys that feed a typed field
        if vtype == V_NONE:
            return 0
        elif vtype == V_STR:
            if a.tlen == 0:
                return 0
            obj = PyUnicode_DecodeUTF8(<const char*>p + a.toff, a.tlen, NULL)
        elif vtype == V_INT:
            memcpy(&iv, self.scratch.p + a.toff + a.tlen, 8)  # stored after the text
            obj = iv
        elif vtype == V_DOUBLE:
            memcpy(&dv, self.scratch.p + a.toff + a.tlen, 8)
            obj = dv
        elif vtype == V_BOOL:
            obj = a.tlen == 4  # "true"
        elif vtype == V_STRARR:
            obj = self._str_list(p, a)
        elif obj is None or (type(obj) is str and not obj):
            return 0
        values[info.slot] = obj
        self.prios[info.slot] = info.prio
        return 0

    cdef int _scalar(self, const uint8_t* p, Py_ssize_t pos, Py_ssize_t n, Attr* a) except -1:
        """Map text of a one-field AnyValue at ``pos``; V_PY when it is not one we read."""
        cdef Py_ssize_t end = pos + n, tpos, tlen = 0, ipos, iend
        cdef uint64_t u = 0
        cdef int64_t iv
        cdef double dv
        cdef char num[32]
        cdef char* text
        cdef int count
        cdef Py_ssize_t item
        a.text_in_scratch = False
        if n == 0:
            a.toff = a.tlen = 0
            return V_NONE
        cdef uint8_t tag = p[pos]
        if tag == 0x0A:  # string_value
            tpos = read_len(p, pos + 1, end, &tlen)
            if tpos < 0 or tpos + tlen != end or not valid_utf8(p + tpos, tlen):
                return V_PY
            a.toff, a.tlen = tpos, tlen
            return V_STR
        if tag == 0x18:  # int_value
            tpos = read_varint(p, pos + 1, end, &u)
            if tpos != end:
                return V_PY
            iv = <int64_t>u
            tlen = snprintf(num, 32, b"%lld", <long long>iv)
            a.toff, a.tlen, a.text_in_scratch = self.scratch.n, tlen, True
            buf_put(&self.scratch, num, tlen)
            buf_put(&self.scratch, <char*>&iv, 8)
            return V_INT
        if tag == 0x21:  # double_value
            if pos + 9 != end:
                return V_PY
            memcpy(&dv, p + pos + 1, 8)
            text = PyOS_double_to_string(dv, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
            tlen = <Py_ssize_t>strlen(text)
            a.toff, a.tlen, a.text_in_scratch = self.scratch.n, tlen, True
            buf_put(&self.scratch, text, tlen)
            PyMem_Free(text)
            buf_put(&self.scratch, <char*>&dv, 8)
            return V_DOUBLE
        if tag == 0x10:  # bool_value
            tpos = read_varint(p, pos + 1, end, &u)
            if tpos != end:
                return V_PY
            a.text_in_scratch = True
            a.toff = self.scratch.n
            if u:
                buf_put(&self.scratch, b"true", 4)
                a.tlen = 4
            else:
                buf_put(&self.scratch, b"false", 5)
                a.tlen = 5
            return V_BOOL
        if tag == 0x2A:  # array_value: only arrays of plain strings (finish reasons, tags)
            tpos = read_len(p, pos + 1, end, &tlen)
            if tpos < 0 or tpos + tlen != end:
                return V_PY
            a.toff = self.scratch.n
            a.text_in_scratch = True
            buf_byte(&self.scratch, b'[')
            ipos = tpos
            count = 0
            while ipos < end:
                # ArrayValue.values (1): AnyValue { string_value (1) }
                if p[ipos] != 0x0A:
                    self.scratch.n = a.toff
                    return V_PY
                ipos = read_len(p, ipos + 1, end, &item)
                if ipos < 0 or item < 2 or p[ipos] != 0x0A:
                    self.scratch.n = a.toff
                    return V_PY
                iend = ipos + item
                tpos = read_len(p, ipos + 1, iend, &tlen)
                if tpos < 0 or tpos + tlen != iend or not valid_utf8(p + tpos, tlen):
                    self.scratch.n = a.toff
                    return V_PY
                if count:
                    buf_byte(&self.scratch, b',')
                json_string(&self.scratch, p + tpos, tlen)
                count += 1
                ipos = iend
            buf_byte(&self.scratch, b']')
            a.tlen = self.scratch.n - a.toff
            # where the array's elements are, for the Python value: after the text
            buf_put(&self.scratch, <char*>&pos, sizeof(Py_ssize_t))
            buf_put(&self.scratch, <char*>&end, sizeof(Py_ssize_t))
            return V_STRARR
        return V_PY

    cdef list _str_list(self, const uint8_t* p, Attr* a):
        cdef Py_ssize_t pos, end, n = 0, tpos, tlen = 0, ipos, iend
        memcpy(&pos, self.scratch.p + a.toff + a.tlen, sizeof(Py_ssize_t))
        memcpy(&end, self.scratch.p + a.toff + a.tlen + sizeof(Py_ssize_t), sizeof(Py_ssize_t))
        ipos = read_len(p, pos + 1, end, &n)
        out = []
        while ipos < end:
            ipos = read_len(p, ipos + 1, end, &n)
            iend = ipos + n
            tpos = read_len(p, ipos + 1, iend, &tlen)
            out.append(PyUnicode_DecodeUTF8(<const char*>p + tpos, tlen, NULL))
            ipos = iend
        return out

    cdef bint _both_message_payloads(self, int n):
        """gen_ai.input.messages and gen_ai.output.messages both present with non-empty text."""
        cdef int i, seen = 0
        cdef Attr* a
        for i in range(n):
            a = &self.attrs[i]
            if a.bits & F_PAYLOAD and a.tlen > 0:
                key = <object>a.info.pykey
                if key == "gen_ai.input.messages":
                    seen |= 1
                elif key == "gen_ai.output.messages":
                    seen |= 2
        return seen == 3

    cdef int _row(self, bytes value, const uint8_t* p, Span* sp, int ri, int si, int pi) except -1:
        cdef int i, flags = 0, n = sp.n_attrs
        cdef bint dup = False, general = sp.extras
        cdef Attr* a
        cdef const char* tbase
        cdef list values = None
        cdef object g = None, take = None
        cdef dict payloads = None
        cdef Py_ssize_t entries = 0
        events_json = links_json = None
        if not general:
            self.scratch.n = 0
            self.span_stamp += 1
            values = [None] * self.n_slots
            for i in range(self.n_slots):
                self.prios[i] = 99
            for i in range(n):
                a = &self.attrs[i]
                self._decode(p, self.attr_pos[2 * i], self.attr_pos[2 * i + 1], a, values, &dup)
                flags |= a.bits
            general = dup or (flags & F_ODD) != 0
            if not general and flags & F_FLAT:
                # flattened message lists only fill the message columns the OTel GenAI keys
                # left empty (genai_fields._extract_payloads); with both filled they are
                # plain map entries, as agents that emit both conventions send them
                general = not self._both_message_payloads(n)
        if general:
            got = self.general(value, ri, si, pi)
            g, events_json, links_json, keys, vals = got
            for key in keys:
                str_add_py(&self.attr_keys, key)
            for text in vals:
                str_add_py(&self.attr_vals, text)
            entries = len(keys)
        elif flags & (F_OI | F_TL | F_OTEL):
            conv = CONVENTIONS[0] if flags & F_OI else CONVENTIONS[1] if flags & F_TL else CONVENTIONS[2]
            if flags & F_PAYLOAD:
                payloads = {}
                for i in range(n):
                    a = &self.attrs[i]
                    if a.bits & F_PAYLOAD:
                        tbase = <const char*>p
                        if a.text_in_scratch:
                            tbase = self.scratch.p
                        payloads[<object>a.info.pykey] = PyUnicode_DecodeUTF8(tbase + a.toff, a.tlen, NULL)
                take = payloads.pop
            g = self.resolve(values, conv, take)
            entries = self._emit_map(p, n, payloads)
        else:
            entries = self._emit_map(p, n, None)
        buf_i32(&self.attr_offs, <int32_t>(self.attr_entries + entries))
        self.attr_entries += entries

        add_hex(&self.s[S_TRACE], p + sp.trace_off, 16)
        add_hex(&self.s[S_SPAN], p + sp.span_off, 8)
        if sp.parent_len == 8 and not all_zero(p + sp.parent_off, 8):
            add_hex(&self.s[S_PARENT], p + sp.parent_off, 8)
        else:
            str_end(&self.s[S_PARENT])
        str_add(&self.s[S_STATE], <const char*>p + sp.state_off, sp.state_len)
        str_add(&self.s[S_NAME], <const char*>p + sp.name_off, sp.name_len)
        if 0 <= sp.kind < len(self.kind_names):
            str_add_py(&self.s[S_KIND], self.kind_names[sp.kind])
        else:
            str_add_py(&self.s[S_KIND], str(sp.kind))
        if 0 <= sp.code < len(self.status_names):
            str_add_py(&self.s[S_STATUS], self.status_names[sp.code])
        else:
            str_add_py(&self.s[S_STATUS], str(sp.code))
        str_add(&self.s[S_STATUS_MSG], <const char*>p + sp.msg_off, sp.msg_len)
        num_add(&self.num[N_START], sp.start, True)
        num_add(&self.num[N_END], sp.end, True)
        num_add(&self.num[N_DURATION], sp.end - sp.start, True)
        if g is None:
            self._no_genai()
        else:
            self._genai(g)
        if events_json is None:
            str_end(&self.s[S_EVENTS])
            str_end(&self.s[S_LINKS])
        else:
            str_add_py(&self.s[S_EVENTS], events_json)
            str_add_py(&self.s[S_LINKS], links_json)
        self.rows += 1
        return OK

    cdef Py_ssize_t _emit_map(self, const uint8_t* p, int n, dict payloads) except -1:
        """The span's map entries in wire order; payloads that resolve() took are left out."""
        cdef int i
        cdef Attr* a
        cdef Py_ssize_t entries = 0
        cdef const char* tbase
        for i in range(n):
            a = &self.attrs[i]
            if payloads is not None and a.bits & F_PAYLOAD and not PyDict_Contains(payloads, <object>a.info.pykey):
                continue
            str_add(&self.attr_keys, a.info.key, a.info.len)
            tbase = <const char*>p
            if a.text_in_scratch:
                tbase = self.scratch.p
            str_add(&self.attr_vals, tbase + a.toff, a.tlen)
            entries += 1
        return entries

    cdef int _no_genai(self) except -1:
        cdef int i
        for i in range(S_CONV, S_EVENTS):
            str_end(&self.s[i])
        for i in range(N_TOKENS, N_TTFT + 1):
            num_add(&self.num[i], 0, False)
        for i in range(5):
            num_add(&self.num[N_PAYLOAD_BYTES + i], 0, True)
        return buf_i32(&self.reason_offs, <int32_t>self.reason_entries)

    cdef int _genai(self, tuple g) except -1:
        """Columns from resolve()'s tuple: convention .. tool_result, then cost and payload sizes."""
        cdef int i
        cdef Py_ssize_t nbytes
        cdef const char* s
        # convention, span_kind, operation, provider, request_model, response_model
        for i in range(6):
            str_add_py(&self.s[S_CONV + i], g[i])
        for i in range(5):  # input, output, cached, reasoning, total tokens
            tok = g[6 + i]
            if tok is None:
                num_add(&self.num[N_TOKENS + i], 0, False)
            else:
                num_add(&self.num[N_TOKENS + i], <uint64_t>tok, True)
        itok, otok = g[6], g[7]
        cost = None
        if itok is not None or otok is not None:
            provider = g[3]
            model = g[5] or g[4]
            price = self.prices.get((provider, model))
            if price is None:
                price = self.price_of(provider, model)
            if price is self.unpriced:
                self.count_unknown(provider)
            else:
                cost = price.cost(itok, otok, g[8], g[9])
        if cost is None:
            num_add_f(&self.num[N_COST], 0.0, False)
            str_end(&self.s[S_PRICING])
        else:
            num_add_f(&self.num[N_COST], cost, True)
            str_add_py(&self.s[S_PRICING], self.pricing_version)
        ttft = g[11]
        if ttft is None:
            num_add_f(&self.num[N_TTFT], 0.0, False)
        else:
            num_add_f(&self.num[N_TTFT], ttft, True)
        for reason in g[12]:
            str_add_py(&self.reasons, reason)
        self.reason_entries += len(g[12])
        buf_i32(&self.reason_offs, <int32_t>self.reason_entries)
        # conversation, user, agent name/id, tool name, tool call id: S_CONV+7 .. S_CONV+12
        for i in range(6):
            str_add_py(&self.s[S_CONV + 7 + i], g[13 + i])
        for i in range(5):  # payloads, claim-checked
            text = g[19 + i]
            if not text:
                str_end(&self.s[S_PAYLOAD + i])
                num_add(&self.num[N_PAYLOAD_BYTES + i], 0, True)
                continue
            s = PyUnicode_AsUTF8AndSize(text, &nbytes)
            if nbytes > self.offload_threshold or text.startswith(self.ref_prefix):
                text, length = self.offload(text)
                str_add_py(&self.s[S_PAYLOAD + i], text)
                num_add(&self.num[N_PAYLOAD_BYTES + i], <uint64_t>length, True)
            else:
                str_add(&self.s[S_PAYLOAD + i], s, nbytes)
                num_add(&self.num[N_PAYLOAD_BYTES + i], <uint64_t>nbytes, True)
        return 0

    # ------------------------------------------------------------ out

    def buffers(self, bint hand_over=False):
        """The columns as raw Arrow buffers: {name: (kind, [buffers...])}.

        Strings: ("str", offsets, data); 8-byte columns: (kind, values, validity bitmap or None);
        ``attributes``: ("map", entry offsets, key offsets, key data, value offsets, value data);
        ``finish_reasons``: ("list", item offsets, string offsets, string data).

        By default copies (``bytes``) and the batch is kept. ``hand_over``: the builder's own
        memory goes out (buffer-protocol objects, no copy) and the builder is empty afterwards,
        as after :meth:`clear`: a batch then exists once, in the Arrow table, instead of twice
        while it is converted, and the next batch starts from no capacity instead of the
        doubled high-water mark of every batch so far.
        """
        out = {}
        cdef int i
        for i in range(NS):
            out[STRING_COLUMNS[i]] = str_spec(&self.s[i], hand_over)
        for i in range(NN):
            name, kind = NUMBER_COLUMNS[i]
            out[name] = (kind, buf_out(&self.num[i].vals, hand_over), self._bitmap(&self.num[i].valid))
        out["attributes"] = map_spec(&self.attr_offs, &self.attr_keys, &self.attr_vals, hand_over)
        out["finish_reasons"] = (
            "list", buf_out(&self.reason_offs, hand_over), buf_out(&self.reasons.offs, hand_over),
            buf_out(&self.reasons.data, hand_over),
        )
        if hand_over:
            self.clear()
        return out

    cdef object _bitmap(self, Buf* valid):
        """Arrow validity bits from one byte per row; None when every row is valid."""
        cdef Py_ssize_t n = valid.n, i
        cdef bint all_valid = True
        for i in range(n):
            if not valid.p[i]:
                all_valid = False
                break
        if all_valid:
            return None
        bits = PyBytes_FromStringAndSize(NULL, (n + 7) // 8)
        cdef uint8_t* out = <uint8_t*>PyBytes_AS_STRING(bits)
        memset(out, 0, (n + 7) // 8)
        for i in range(n):
            if valid.p[i]:
                out[i >> 3] |= <uint8_t>(1 << (i & 7))
        return bits


# ================================================================ scores

# ``spanline.v1.Score`` / ``ScoreSet`` wire bytes -> the ``scores`` table's columns. The
# writer and the coldtier read ~9 scores a trace; through protobuf objects and Python rows a
# score cost more than a span. Same contract as WireSpans: anything outside the fast subset
# (unknown fields, wrong wire types, invalid UTF-8, bad ids, an empty score id or project, a
# time out of range, a repeated attribute key) makes ``add`` return -1 with the batch
# untouched, and the caller's Python rows take the message (accept it or word the error).

SCORE_STRING_COLUMNS = (
    "project_id", "score_id", "trace_id", "span_id", "name", "score_label", "explanation",
    "evaluator_kind", "sampling_reason",
)
SCORE_NUMBER_COLUMNS = (("score_value", "f64"), ("sampling_weight", "f64"), ("time", "ts"), ("ingested_at", "ts"))

cdef enum:
    SC_PROJECT = 0
    SC_ID = 1
    SC_TRACE = 2
    SC_SPAN = 3
    SC_NAME = 4
    SC_LABEL = 5
    SC_EXPLANATION = 6
    SC_KIND = 7
    SC_REASON = 8
    NSC = 9
    SN_VALUE = 0
    SN_WEIGHT = 1
    SN_TIME = 2
    SN_INGESTED = 3
    NSN = 4
    MAX_SCORE_ATTRS = 64

# The column of each length-delimited Score field, by field number (-1: not one of them).
cdef int SCORE_FIELD_COLUMN[11]
SCORE_FIELD_COLUMN[:] = [-1, SC_ID, SC_PROJECT, SC_TRACE, SC_SPAN, SC_NAME, -1, SC_LABEL, SC_EXPLANATION, SC_KIND, SC_REASON]

cdef struct ScoreView:
    Py_ssize_t off[NSC]
    Py_ssize_t len[NSC]
    uint64_t value_bits, weight_bits, time
    int n_attrs
    Py_ssize_t key_off[MAX_SCORE_ATTRS]
    Py_ssize_t key_len[MAX_SCORE_ATTRS]
    Py_ssize_t val_off[MAX_SCORE_ATTRS]
    Py_ssize_t val_len[MAX_SCORE_ATTRS]

cdef inline Py_ssize_t read_fixed64(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, uint64_t* out) noexcept:
    if end - pos < 8:
        return -1
    memcpy(out, p + pos, 8)
    return pos + 8

cdef int read_score_entry(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, ScoreView* v) noexcept:
    """One ``attributes`` map entry (key 1, value 2, both strings): OK or FALLBACK."""
    if v.n_attrs >= MAX_SCORE_ATTRS:
        return FALLBACK
    cdef int i = v.n_attrs
    cdef uint64_t tag = 0
    cdef Py_ssize_t size = 0
    v.key_off[i] = 0
    v.key_len[i] = 0
    v.val_off[i] = 0
    v.val_len[i] = 0
    while pos < end:
        pos = read_varint(p, pos, end, &tag)
        if pos < 0 or (tag != 0x0A and tag != 0x12):
            return FALLBACK
        pos = read_text(p, pos, end, &size)
        if pos < 0:
            return FALLBACK
        if tag == 0x0A:
            v.key_off[i], v.key_len[i] = pos, size
        else:
            v.val_off[i], v.val_len[i] = pos, size
        pos += size
    v.n_attrs = i + 1
    return OK

cdef int read_score(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, ScoreView* v) noexcept:
    """The fields of one Score (a repeated scalar: the last wins, as protobuf merges): OK or FALLBACK."""
    memset(v, 0, sizeof(ScoreView))
    cdef uint64_t tag = 0
    cdef Py_ssize_t size = 0
    cdef int col
    while pos < end:
        pos = read_varint(p, pos, end, &tag)
        if pos < 0:
            return FALLBACK
        if tag == 0x31 or tag == 0x59 or tag == 0x61:  # score_value, sampling_weight, time (64-bit)
            pos = read_fixed64(p, pos, end, &v.value_bits if tag == 0x31 else (&v.weight_bits if tag == 0x59 else &v.time))
            if pos < 0:
                return FALLBACK
            continue
        if tag == 0x6A:  # an attributes entry
            pos = read_len(p, pos, end, &size)
            if pos < 0 or read_score_entry(p, pos, pos + size, v) != OK:
                return FALLBACK
            pos += size
            continue
        if (tag & 7) != 2 or (tag >> 3) > 10 or SCORE_FIELD_COLUMN[tag >> 3] < 0:
            return FALLBACK
        col = SCORE_FIELD_COLUMN[tag >> 3]
        if col == SC_TRACE or col == SC_SPAN:
            pos = read_len(p, pos, end, &size)
        else:
            pos = read_text(p, pos, end, &size)
        if pos < 0:
            return FALLBACK
        v.off[col], v.len[col] = pos, size
        pos += size
    return OK

cdef int score_row_ok(const uint8_t* p, ScoreView* v, Py_ssize_t default_project, int64_t received,
                      int64_t time_max) noexcept:
    """Whether the row converts as ScoreRows._row would without an error: OK or FALLBACK."""
    cdef int i, j
    cdef Py_ssize_t n
    if v.len[SC_PROJECT] == 0 and default_project == 0:
        return FALLBACK
    if v.len[SC_ID] == 0 or v.len[SC_TRACE] != 16 or all_zero(p + v.off[SC_TRACE], 16):
        return FALLBACK
    if v.len[SC_SPAN] != 0 and v.len[SC_SPAN] != 8:
        return FALLBACK
    cdef uint64_t t = v.time if v.time else <uint64_t>received
    if received < 0 or t > <uint64_t>time_max:
        return FALLBACK
    for i in range(v.n_attrs):  # a repeated key: the map keeps the last, rare enough to leave to Python
        for j in range(i):
            n = v.key_len[i]
            if n == v.key_len[j] and memcmp(p + v.key_off[i], p + v.key_off[j], n) == 0:
                return FALLBACK
    return OK

cdef inline int key_before(const uint8_t* p, ScoreView* v, int a, int b) noexcept:
    """Key ``a`` sorts before key ``b`` (UTF-8 byte order is code point order, as sorted() on str)."""
    cdef Py_ssize_t na = v.key_len[a], nb = v.key_len[b]
    cdef int c = memcmp(p + v.key_off[a], p + v.key_off[b], na if na < nb else nb)
    return c < 0 or (c == 0 and na < nb)


cdef class WireScores:
    """Rows of the ``scores`` table from Score / ScoreSet record values, as Arrow buffers."""

    cdef StrCol s[NSC]
    cdef Buf num[NSN]
    cdef Buf attr_offs
    cdef StrCol attr_keys
    cdef StrCol attr_vals
    cdef Py_ssize_t rows
    cdef int32_t n_entries
    cdef int64_t time_max

    def __cinit__(self):
        memset(self.s, 0, sizeof(self.s))
        memset(self.num, 0, sizeof(self.num))
        memset(&self.attr_offs, 0, sizeof(Buf))
        memset(&self.attr_keys, 0, sizeof(StrCol))
        memset(&self.attr_vals, 0, sizeof(StrCol))

    def __init__(self, *, time_max):
        self.time_max = time_max
        self.clear()

    def __dealloc__(self):
        cdef int i
        for i in range(NSC):
            str_free(&self.s[i])
        for i in range(NSN):
            free(self.num[i].p)
        free(self.attr_offs.p)
        str_free(&self.attr_keys)
        str_free(&self.attr_vals)

    def clear(self):
        cdef int i
        for i in range(NSC):
            str_reset(&self.s[i])
        for i in range(NSN):
            buf_reset(&self.num[i])
        buf_reset(&self.attr_offs)
        buf_i32(&self.attr_offs, 0)
        str_reset(&self.attr_keys)
        str_reset(&self.attr_vals)
        self.rows = 0
        self.n_entries = 0

    def __len__(self):
        return self.rows

    def add(self, bytes value, str project_id, received_at_ns):
        """Rows added for this record value (a Score or a ScoreSet, all its scores or none),
        or -1: not in the fast subset, nothing added."""
        cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(value)
        cdef Py_ssize_t end = PyBytes_GET_SIZE(value)
        cdef Py_ssize_t dlen
        cdef const char* dproj = PyUnicode_AsUTF8AndSize(project_id, &dlen)
        cdef int64_t received
        try:
            received = received_at_ns
        except OverflowError:
            return -1
        cdef ScoreView v
        cdef Py_ssize_t pos, size, count = 0
        cdef uint64_t tag
        cdef int emit
        if end >= 2 and p[0] == 0x82 and p[1] == 0x01:
            for emit in range(2):  # check every score first: a set is added all or none
                pos = 0
                while pos < end:
                    pos = read_varint(p, pos, end, &tag)
                    if pos < 0 or tag != 0x82:
                        return -1
                    pos = read_len(p, pos, end, &size)
                    if pos < 0 or read_score(p, pos, pos + size, &v) != OK:
                        return -1
                    if emit:
                        self._emit(p, &v, dproj, dlen, received)
                        count += 1
                    elif score_row_ok(p, &v, dlen, received, self.time_max) != OK:
                        return -1
                    pos += size
            return count
        if read_score(p, 0, end, &v) != OK or score_row_ok(p, &v, dlen, received, self.time_max) != OK:
            return -1
        self._emit(p, &v, dproj, dlen, received)
        return 1

    cdef int _emit(self, const uint8_t* p, ScoreView* v, const char* dproj, Py_ssize_t dlen,
                   int64_t received) except -1:
        cdef int i, j, k
        cdef int order[MAX_SCORE_ATTRS]
        for i in range(NSC):
            if i == SC_PROJECT and v.len[i] == 0:
                str_add(&self.s[i], dproj, dlen)
            elif i == SC_TRACE or i == SC_SPAN:
                if v.len[i] == 0 or all_zero(p + v.off[i], v.len[i]):
                    str_end(&self.s[i])
                else:
                    add_hex(&self.s[i], p + v.off[i], v.len[i])
            else:
                str_add(&self.s[i], <const char*>(p + v.off[i]), v.len[i])
        buf_u64(&self.num[SN_VALUE], v.value_bits)
        buf_u64(&self.num[SN_WEIGHT], v.weight_bits)
        buf_u64(&self.num[SN_TIME], v.time if v.time else <uint64_t>received)
        buf_u64(&self.num[SN_INGESTED], <uint64_t>received)
        for i in range(v.n_attrs):  # insertion sort by key: a handful of entries
            j = i
            while j > 0 and key_before(p, v, i, order[j - 1]):
                order[j] = order[j - 1]
                j -= 1
            order[j] = i
        for i in range(v.n_attrs):
            k = order[i]
            str_add(&self.attr_keys, <const char*>(p + v.key_off[k]), v.key_len[k])
            str_add(&self.attr_vals, <const char*>(p + v.val_off[k]), v.val_len[k])
        self.n_entries += v.n_attrs
        buf_i32(&self.attr_offs, self.n_entries)
        self.rows += 1
        return 0

    def buffers(self, bint hand_over=False):
        """The columns as raw Arrow buffers, as :meth:`WireSpans.buffers` (numbers never null)."""
        out = {}
        cdef int i
        for i in range(NSC):
            out[SCORE_STRING_COLUMNS[i]] = str_spec(&self.s[i], hand_over)
        for i in range(NSN):
            name, kind = SCORE_NUMBER_COLUMNS[i]
            out[name] = (kind, buf_out(&self.num[i], hand_over), None)
        out["attributes"] = map_spec(&self.attr_offs, &self.attr_keys, &self.attr_vals, hand_over)
        if hand_over:
            self.clear()
        return out
