#include "weights/pickle.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "util/error.h"

namespace vnp::weights {

using Kind = PickleValue::Kind;

PickleRef PickleValue::get(std::string_view key) const {
  if (kind != Kind::Dict) return nullptr;
  for (const auto& [k, v] : entries) {
    if (k && k->kind == Kind::String && k->text == key) return v;
  }
  return nullptr;
}

PickleValue::~PickleValue() {
  std::vector<PickleRef> orphans;
  auto adopt = [&orphans](PickleValue& v) {
    for (auto& c : v.items) orphans.push_back(std::move(c));
    for (auto& [k, c] : v.entries) {
      orphans.push_back(std::move(k));
      orphans.push_back(std::move(c));
    }
    orphans.push_back(std::move(v.state));
    v.items.clear();
    v.entries.clear();
  };
  adopt(*this);
  while (!orphans.empty()) {
    PickleRef node = std::move(orphans.back());
    orphans.pop_back();
    if (node && node.use_count() == 1) adopt(*node);  // it dies at the end of this iteration, childless
  }
}

const char* PickleValue::kind_name() const {
  switch (kind) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::BigInt:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "str";
    case Kind::Bytes:
      return "bytes";
    case Kind::List:
      return "list";
    case Kind::Tuple:
      return "tuple";
    case Kind::Dict:
      return "dict";
    case Kind::Set:
      return "set";
    case Kind::Global:
      return "global";
    case Kind::Object:
      return "object";
    case Kind::Tensor:
      return "tensor";
    case Kind::Storage:
      return "storage";
  }
  return "?";
}

namespace {

std::optional<DType> storage_dtype(const std::string& name) {
  static const std::map<std::string, DType> kStorages = {
      {"torch.FloatStorage", DType::F32},     {"torch.HalfStorage", DType::F16},
      {"torch.BFloat16Storage", DType::BF16}, {"torch.DoubleStorage", DType::F64},
      {"torch.LongStorage", DType::I64},      {"torch.IntStorage", DType::I32},
      {"torch.ShortStorage", DType::I16},     {"torch.CharStorage", DType::I8},
      {"torch.ByteStorage", DType::U8},       {"torch.BoolStorage", DType::Bool},
      {"torch.UntypedStorage", DType::U8},    {"torch.storage.UntypedStorage", DType::U8}};
  auto it = kStorages.find(name);
  if (it == kStorages.end()) return std::nullopt;
  return it->second;
}

std::optional<DType> torch_dtype(const std::string& name) {
  static const std::map<std::string, DType> kDtypes = {
      {"torch.float32", DType::F32}, {"torch.float", DType::F32},     {"torch.float16", DType::F16},
      {"torch.half", DType::F16},    {"torch.bfloat16", DType::BF16}, {"torch.float64", DType::F64},
      {"torch.double", DType::F64},  {"torch.int64", DType::I64},     {"torch.long", DType::I64},
      {"torch.int32", DType::I32},   {"torch.int", DType::I32},       {"torch.int16", DType::I16},
      {"torch.short", DType::I16},   {"torch.int8", DType::I8},       {"torch.uint8", DType::U8},
      {"torch.bool", DType::Bool}};
  auto it = kDtypes.find(name);
  if (it == kDtypes.end()) return std::nullopt;
  return it->second;
}

class Unpickler {
 public:
  Unpickler(const std::byte* bytes, size_t size, const PersistentLoad& persistent_load,
            const std::string& file, UnpickleLimits limits)
      : p_(bytes), n_(size), persistent_load_(persistent_load), file_(file), limits_(limits) {}

  PickleRef run(size_t* consumed) {
    try {
      PickleRef result = execute();
      check_depth(result);
      if (consumed) *consumed = pos_;
      stack_.clear();
      memo_.clear();
      return result;
    } catch (...) {
      break_links();
      throw;
    }
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw ModelError(file_, "<pickle>", problem + " (at byte " + std::to_string(op_pos_) + ")");
  }

  // ---- reading the byte stream ----
  void need(size_t count) const {
    if (count > n_ - pos_) fail("ends in the middle of an opcode (truncated)");
  }
  uint8_t u8() {
    need(1);
    return static_cast<uint8_t>(p_[pos_++]);
  }
  uint64_t uint_le(size_t count) {
    need(count);
    uint64_t v = 0;
    for (size_t i = count; i-- > 0;) v = (v << 8) | static_cast<uint8_t>(p_[pos_ + i]);
    pos_ += count;
    return v;
  }
  std::string raw(uint64_t count) {
    if (count > n_ - pos_) fail("declares " + std::to_string(count) + " bytes but the pickle ends first");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(count));
    pos_ += static_cast<size_t>(count);
    return s;
  }
  std::string line() {
    const size_t start = pos_;
    while (pos_ < n_ && p_[pos_] != std::byte{'\n'}) ++pos_;
    if (pos_ >= n_) fail("ends inside a text line");
    std::string s(reinterpret_cast<const char*>(p_ + start), pos_ - start);
    ++pos_;
    return s;
  }

  // ---- values ----
  PickleRef make(Kind kind) {
    auto v = std::make_shared<PickleValue>();
    v->kind = kind;
    nodes_.push_back(v);
    return v;
  }
  PickleRef make_int(int64_t i) {
    auto v = make(Kind::Int);
    v->integer = i;
    return v;
  }
  PickleRef make_text(Kind kind, std::string s) {
    auto v = make(kind);
    v->text = std::move(s);
    return v;
  }
  PickleRef make_bool(bool b) {
    auto v = make(Kind::Bool);
    v->boolean = b;
    return v;
  }
  // LONG1/LONG4 payload: little-endian two's complement.
  PickleRef make_long(const std::string& bytes) {
    if (bytes.size() > 8) return make_text(Kind::BigInt, bytes);
    uint64_t u = 0;
    for (size_t i = bytes.size(); i-- > 0;) u = (u << 8) | static_cast<uint8_t>(bytes[i]);
    if (!bytes.empty() && bytes.size() < 8 && (static_cast<uint8_t>(bytes.back()) & 0x80)) {
      u |= ~uint64_t{0} << (8 * bytes.size());  // sign-extend
    }
    return make_int(static_cast<int64_t>(u));
  }
  int64_t parse_decimal(const std::string& s) {
    std::string t = s;
    if (!t.empty() && t.back() == 'L') t.pop_back();
    if (t.empty()) fail("holds an empty number");
    size_t i = (t[0] == '-' || t[0] == '+') ? 1 : 0;
    if (i == t.size()) fail("holds a malformed number '" + s + "'");
    for (size_t j = i; j < t.size(); ++j) {
      if (t[j] < '0' || t[j] > '9') fail("holds a malformed number '" + s + "'");
    }
    errno = 0;
    const long long v = std::strtoll(t.c_str(), nullptr, 10);
    if (errno == ERANGE) fail("holds a number out of range '" + s + "'");
    return v;
  }

  // ---- stack ----
  void push(PickleRef v) { stack_.push_back(std::move(v)); }
  PickleRef pop() {
    if (stack_.size() <= stack_floor()) fail("pops an empty stack");
    PickleRef v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  PickleRef& top() {
    if (stack_.size() <= stack_floor()) fail("reads an empty stack");
    return stack_.back();
  }
  size_t stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<PickleRef> pop_mark() {
    if (marks_.empty()) fail("has no MARK to pop to");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<PickleRef> items(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(mark)),
                                 std::make_move_iterator(stack_.end()));
    stack_.resize(mark);
    return items;
  }
  PickleRef memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail("reads memo slot " + std::to_string(key) + " that was never set");
    return it->second;
  }

  // ---- containers ----
  void append_items(const PickleRef& target, std::vector<PickleRef> items) {
    if (target->kind != Kind::List && target->kind != Kind::Object && target->kind != Kind::Set) {
      fail(std::string("appends to a ") + target->kind_name());
    }
    for (auto& item : items) target->items.push_back(std::move(item));
  }
  void set_items(const PickleRef& target, std::vector<PickleRef> kv) {
    if (kv.size() % 2) fail("sets dict items from an odd number of values");
    if (target->kind != Kind::Dict && target->kind != Kind::Object) {
      fail(std::string("sets items on a ") + target->kind_name());
    }
    for (size_t i = 0; i < kv.size(); i += 2) set_item(target, std::move(kv[i]), std::move(kv[i + 1]));
  }
  // Python dict semantics: an existing key (same int or string) is overwritten in place.
  static void set_item(const PickleRef& target, PickleRef key, PickleRef value) {
    // The scan is linear, so only small dicts (module and config dicts) get exact replacement; in a
    // large one a repeated key stays a second entry (and a state dict then reports it as a duplicate).
    if (target->entries.size() < 256) {
      for (auto& [k, v] : target->entries) {
        if (k->kind == key->kind && ((k->kind == Kind::String && k->text == key->text) ||
                                     (k->kind == Kind::Int && k->integer == key->integer))) {
          v = std::move(value);
          return;
        }
      }
    }
    target->entries.emplace_back(std::move(key), std::move(value));
  }
  PickleRef make_tuple(std::vector<PickleRef> items) {
    auto t = make(Kind::Tuple);
    t->items = std::move(items);
    return t;
  }

  // ---- globals and calls ----
  PickleRef make_global(std::string module, const std::string& name) {
    if (module == "__builtin__") module = "builtins";
    if (module.empty() || name.empty()) fail("names an empty global");
    if (!allowed_global(module, name)) {
      throw ModelError(file_, "<pickle>",
                       "names the global " + module + "." + name +
                           ", which no checkpoint holds (torch.load would import it and may run code); "
                           "refusing to load (at byte " +
                           std::to_string(op_pos_) + ")");
    }
    return make_text(Kind::Global, module + "." + name);
  }

  static int64_t as_int(const PickleRef& v, bool* ok) {
    *ok = v && (v->kind == Kind::Int || v->kind == Kind::Bool);
    return !*ok ? 0 : (v->kind == Kind::Bool ? v->boolean : v->integer);
  }
  std::vector<int64_t> int_tuple(const PickleRef& v, const char* what) {
    if (!v || (v->kind != Kind::Tuple && v->kind != Kind::List))
      fail(std::string("tensor ") + what + " is not a tuple");
    if (v->items.size() > 64) fail(std::string("tensor ") + what + " has more than 64 dimensions");
    std::vector<int64_t> out;
    for (const auto& item : v->items) {
      bool ok = false;
      out.push_back(as_int(item, &ok));
      if (!ok) fail(std::string("tensor ") + what + " holds a " + item->kind_name());
    }
    return out;
  }

  // torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]);
  // _v3 adds the dtype at index 6; _rebuild_tensor(storage, offset, size, stride).
  PickleRef rebuild_tensor(const std::vector<PickleRef>& args, bool explicit_dtype) {
    if (args.size() < 4 || (explicit_dtype && args.size() < 7))
      fail("rebuilds a tensor with too few arguments");
    if (args[0]->kind != Kind::Storage) fail(std::string("rebuilds a tensor from a ") + args[0]->kind_name());
    auto ref = std::make_shared<TensorRef>();
    ref->storage = args[0]->storage;
    ref->dtype = ref->storage->dtype;
    bool ok = false;
    ref->offset = as_int(args[1], &ok);
    if (!ok || ref->offset < 0) fail("rebuilds a tensor with a bad storage offset");
    ref->shape = int_tuple(args[2], "size");
    ref->stride = int_tuple(args[3], "stride");
    if (ref->shape.size() != ref->stride.size())
      fail("rebuilds a tensor whose size and stride differ in length");
    if (explicit_dtype) {
      auto dt = args[6]->kind == Kind::Global ? torch_dtype(args[6]->text) : std::nullopt;
      if (!dt) fail("rebuilds a tensor with an unsupported dtype");
      ref->dtype = *dt;
    }
    auto v = make(Kind::Tensor);
    v->tensor = std::move(ref);
    return v;
  }

  PickleRef call(const PickleRef& fn, const PickleRef& args) {
    if (fn->kind != Kind::Global)
      fail(std::string("calls a ") + fn->kind_name() + ", not a named class or function");
    if (args->kind != Kind::Tuple)
      fail(std::string("calls ") + fn->text + " with a " + args->kind_name() + " as arguments");
    const std::string& name = fn->text;
    const auto& a = args->items;
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor")
      return rebuild_tensor(a, false);
    if (name == "torch._utils._rebuild_tensor_v3") return rebuild_tensor(a, true);
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state" ||
        name == "torch.nn.parameter.Parameter") {
      if (a.empty() || a[0]->kind != Kind::Tensor)
        fail("rebuilds a parameter from something that is not a tensor");
      return a[0];
    }
    if (name == "collections.OrderedDict" || name == "builtins.dict") {
      auto d = make(Kind::Dict);
      if (!a.empty() && (a[0]->kind == Kind::List || a[0]->kind == Kind::Tuple)) {
        for (const auto& pair : a[0]->items) {
          if (pair->kind != Kind::Tuple || pair->items.size() != 2)
            fail("builds a dict from something not a pair");
          set_item(d, pair->items[0], pair->items[1]);
        }
      }
      return d;
    }
    if (name == "builtins.set" || name == "builtins.frozenset") {
      auto s = make(Kind::Set);
      if (!a.empty() && (a[0]->kind == Kind::List || a[0]->kind == Kind::Tuple || a[0]->kind == Kind::Set)) {
        s->items = a[0]->items;
      }
      return s;
    }
    if (name == "_codecs.encode") return codecs_encode(a);
    // Tensor subclasses: _rebuild_from_type_v2(rebuild function, class, its args, state).
    if (name == "torch._tensor._rebuild_from_type_v2") {
      if (a.size() < 3 || a[0]->kind != Kind::Global || a[0]->text == name || a[2]->kind != Kind::Tuple)
        fail("rebuilds a tensor subclass with malformed arguments");
      return call(a[0], a[2]);
    }
    if (name == "torch.Size" || name == "builtins.tuple") {
      if (!a.empty() && (a[0]->kind == Kind::List || a[0]->kind == Kind::Tuple))
        return make_tuple(a[0]->items);
      return make_tuple({});
    }
    // Anything else is recorded, never called.
    auto obj = make_text(Kind::Object, name);
    obj->items = a;
    return obj;
  }

  // _codecs.encode(str, 'latin1'): how protocol 2 stores bytes.
  PickleRef codecs_encode(const std::vector<PickleRef>& a) {
    if (a.empty() || a[0]->kind != Kind::String) fail("calls _codecs.encode without a string");
    const std::string& s = a[0]->text;
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {  // UTF-8 code points < 256 -> one byte each
      const auto c = static_cast<uint8_t>(s[i]);
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else if ((c & 0xE0) == 0xC0 && i + 1 < s.size() && c <= 0xC3) {
        out += static_cast<char>(((c & 0x03) << 6) | (static_cast<uint8_t>(s[++i]) & 0x3F));
      } else {
        fail("calls _codecs.encode on text that is not latin-1");
      }
    }
    return make_text(Kind::Bytes, out);
  }

  void build(const PickleRef& target, PickleRef state) {
    if (target->kind == Kind::Object) target->state = std::move(state);
    // Other targets (a state dict's `_metadata` attribute, a tensor's Python attributes) carry
    // nothing we need; their items are not touched.
  }

  PickleRef persistent(PickleRef pid) {
    if (!persistent_load_) fail("holds a persistent id but this file format has no storages");
    PickleRef v = persistent_load_(pid);
    if (!v) fail("holds a persistent id that does not resolve");
    return v;
  }

  PickleRef execute();

  // ---- result checks ----
  // Depth of every node (memoised, so shared sub-trees cost once); a cycle or too deep nesting fails.
  size_t depth_of(const PickleValue* v, size_t level) {
    if (level > limits_.max_depth) {
      throw ModelError(
          file_, "<pickle>",
          "nests deeper than " + std::to_string(limits_.max_depth) + " levels (or refers to itself)");
    }
    if (auto it = depth_.find(v); it != depth_.end()) return it->second;
    if (!on_path_.insert(v).second)
      throw ModelError(file_, "<pickle>", "holds a container that contains itself");
    size_t d = 0;
    auto visit = [&](const PickleRef& c) {
      if (c) d = std::max(d, depth_of(c.get(), level + 1));
    };
    for (const auto& c : v->items) visit(c);
    for (const auto& [k, c] : v->entries) {
      visit(k);
      visit(c);
    }
    visit(v->state);
    on_path_.erase(v);
    depth_[v] = d + 1;
    return d + 1;
  }
  void check_depth(const PickleRef& root) {
    depth_of(root.get(), 0);
    depth_.clear();
  }
  // After a failure: drop every link between nodes so cycles are freed and nothing deep is
  // destroyed recursively.
  void break_links() {
    stack_.clear();
    memo_.clear();
    for (auto& node : nodes_) {
      node->items.clear();
      node->entries.clear();
      node->state.reset();
    }
    nodes_.clear();
  }

  const std::byte* p_;
  size_t n_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  const PersistentLoad& persistent_load_;
  const std::string& file_;
  UnpickleLimits limits_;
  std::vector<PickleRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleRef> memo_;
  std::vector<PickleRef> nodes_;
  std::unordered_map<const PickleValue*, size_t> depth_;
  std::unordered_set<const PickleValue*> on_path_;
};

PickleRef Unpickler::execute() {
  for (;;) {
    op_pos_ = pos_;
    if (pos_ >= n_) fail("ends before its STOP opcode (truncated)");
    const uint8_t op = u8();
    switch (op) {
      case 0x80: {  // PROTO
        const uint8_t proto = u8();
        if (proto > 5) fail("uses pickle protocol " + std::to_string(proto) + " (5 is the newest)");
        break;
      }
      case 0x95:
        uint_le(8);
        break;     // FRAME: a length hint only
      case '.': {  // STOP
        if (stack_.size() != 1 || !marks_.empty())
          fail("stops with " + std::to_string(stack_.size()) + " values on the stack");
        return stack_.back();
      }
      case 'N':
        push(make(Kind::None));
        break;
      case 0x88:
        push(make_bool(true));
        break;
      case 0x89:
        push(make_bool(false));
        break;
      case 'I': {  // INT (protocol 0): "01"/"00" are booleans
        const std::string s = line();
        if (s == "01" || s == "00")
          push(make_bool(s == "01"));
        else
          push(make_int(parse_decimal(s)));
        break;
      }
      case 'L':
        push(make_int(parse_decimal(line())));
        break;
      case 'J':
        push(make_int(static_cast<int32_t>(static_cast<uint32_t>(uint_le(4)))));
        break;
      case 'K':
        push(make_int(u8()));
        break;
      case 'M':
        push(make_int(static_cast<int64_t>(uint_le(2))));
        break;
      case 0x8a:
        push(make_long(raw(u8())));
        break;
      case 0x8b: {
        const int64_t len = static_cast<int32_t>(static_cast<uint32_t>(uint_le(4)));
        if (len < 0) fail("has a negative LONG4 length");
        push(make_long(raw(static_cast<uint64_t>(len))));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian double
        need(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<uint8_t>(p_[pos_ + i]);
        pos_ += 8;
        auto v = make(Kind::Float);
        std::memcpy(&v->number, &bits, 8);
        push(v);
        break;
      }
      case 'F': {
        const std::string s = line();
        char* end = nullptr;
        auto v = make(Kind::Float);
        v->number = std::strtod(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size()) fail("holds a malformed float '" + s + "'");
        push(v);
        break;
      }
      case 'X':
        push(make_text(Kind::String, raw(uint_le(4))));
        break;
      case 0x8c:
        push(make_text(Kind::String, raw(u8())));
        break;
      case 0x8d:
        push(make_text(Kind::String, raw(uint_le(8))));
        break;
      case 'T': {
        const int64_t len = static_cast<int32_t>(static_cast<uint32_t>(uint_le(4)));
        if (len < 0) fail("has a negative BINSTRING length");
        push(make_text(Kind::String, raw(static_cast<uint64_t>(len))));
        break;
      }
      case 'U':
        push(make_text(Kind::String, raw(u8())));
        break;
      case 'S':
      case 'V': {  // STRING / UNICODE (protocol 0): accepted without escapes only
        std::string s = line();
        if (op == 'S') {
          if (s.size() < 2 || (s.front() != '\'' && s.front() != '"') || s.back() != s.front())
            fail("holds a malformed STRING");
          s = s.substr(1, s.size() - 2);
        }
        if (s.find('\\') != std::string::npos) fail("holds an escaped protocol-0 string (not supported)");
        push(make_text(Kind::String, s));
        break;
      }
      case 'B':
        push(make_text(Kind::Bytes, raw(uint_le(4))));
        break;
      case 'C':
        push(make_text(Kind::Bytes, raw(u8())));
        break;
      case 0x8e:
      case 0x96:
        push(make_text(Kind::Bytes, raw(uint_le(8))));
        break;
      case ']':
        push(make(Kind::List));
        break;
      case '}':
        push(make(Kind::Dict));
        break;
      case ')':
        push(make(Kind::Tuple));
        break;
      case 0x8f:
        push(make(Kind::Set));
        break;
      case '(':
        marks_.push_back(stack_.size());
        break;
      case 'l': {
        auto l = make(Kind::List);
        l->items = pop_mark();
        push(l);
        break;
      }
      case 't':
        push(make_tuple(pop_mark()));
        break;
      case 0x91: {
        auto s = make(Kind::Set);
        s->items = pop_mark();
        push(s);
        break;
      }
      case 'd': {
        auto d = make(Kind::Dict);
        set_items(d, pop_mark());
        push(d);
        break;
      }
      case 0x85:
        push(make_tuple({pop()}));
        break;
      case 0x86: {
        auto b = pop();
        auto a = pop();
        push(make_tuple({a, b}));
        break;
      }
      case 0x87: {
        auto c = pop();
        auto b = pop();
        auto a = pop();
        push(make_tuple({a, b, c}));
        break;
      }
      case 'a': {
        auto item = pop();
        append_items(top(), {item});
        break;
      }
      case 'e': {
        auto items = pop_mark();
        append_items(top(), std::move(items));
        break;
      }
      case 0x90: {  // ADDITEMS
        auto items = pop_mark();
        append_items(top(), std::move(items));
        break;
      }
      case 's': {
        auto value = pop();
        auto key = pop();
        set_items(top(), {key, value});
        break;
      }
      case 'u': {
        auto kv = pop_mark();
        set_items(top(), std::move(kv));
        break;
      }
      case '0':
        pop();
        break;
      case '1':
        pop_mark();
        break;
      case '2':
        push(top());
        break;
      case 'p':
        memo_[static_cast<uint64_t>(parse_decimal(line()))] = top();
        break;
      case 'q':
        memo_[u8()] = top();
        break;
      case 'r':
        memo_[uint_le(4)] = top();
        break;
      case 0x94:
        memo_[memo_.size()] = top();
        break;
      case 'g':
        push(memo_get(static_cast<uint64_t>(parse_decimal(line()))));
        break;
      case 'h':
        push(memo_get(u8()));
        break;
      case 'j':
        push(memo_get(uint_le(4)));
        break;
      case 'c': {
        std::string module = line();
        std::string name = line();
        push(make_global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        auto name = pop();
        auto module = pop();
        if (name->kind != Kind::String || module->kind != Kind::String)
          fail("STACK_GLOBAL needs two strings");
        push(make_global(module->text, name->text));
        break;
      }
      case 'R': {
        auto args = pop();
        auto fn = pop();
        push(call(fn, args));
        break;
      }
      case 0x81: {  // NEWOBJ cls.__new__(cls, *args)
        auto args = pop();
        auto cls = pop();
        push(call(cls, args));
        break;
      }
      case 0x92: {  // NEWOBJ_EX: kwargs are dropped
        pop();
        auto args = pop();
        auto cls = pop();
        push(call(cls, args));
        break;
      }
      case 'i': {  // INST module\nname\n with MARKed args
        std::string module = line();
        std::string name = line();
        auto cls = make_global(module, name);
        push(call(cls, make_tuple(pop_mark())));
        break;
      }
      case 'o': {  // OBJ: MARK cls args...
        auto items = pop_mark();
        if (items.empty()) fail("OBJ without a class");
        auto cls = items.front();
        items.erase(items.begin());
        push(call(cls, make_tuple(std::move(items))));
        break;
      }
      case 'b': {
        auto state = pop();
        build(top(), std::move(state));
        break;
      }
      case 'Q':
        push(persistent(pop()));
        break;
      case 'P':
        push(persistent(make_text(Kind::String, line())));
        break;
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(std::string("uses opcode ") + hex + ", which checkpoints never hold");
      }
    }
  }
}

// ---- tensors ----

void walk_tensors(const PickleRef& v, std::unordered_set<const PickleValue*>& seen,
                  std::vector<std::shared_ptr<TensorRef>>& out) {
  if (!v || !seen.insert(v.get()).second) return;
  if (v->kind == Kind::Tensor) out.push_back(v->tensor);
  for (const auto& c : v->items) walk_tensors(c, seen, out);
  for (const auto& [k, c] : v->entries) walk_tensors(c, seen, out);
  walk_tensors(v->state, seen, out);
}

void materialize(TensorRef& t, const std::string& file) {
  const Storage& s = *t.storage;
  const std::string where = "storage " + s.key;
  const size_t esize = dtype_size(t.dtype);
  uint64_t storage_bytes = 0;
  if (s.numel < 0 ||
      __builtin_mul_overflow(static_cast<uint64_t>(s.numel), dtype_size(s.dtype), &storage_bytes)) {
    throw ModelError(file, where, "has an impossible element count");
  }
  if (!s.data && storage_bytes) throw ModelError(file, where, "has no data");
  // Element count and the furthest element the view touches.
  uint64_t numel = 1, last = static_cast<uint64_t>(t.offset);
  for (size_t k = 0; k < t.shape.size(); ++k) {
    if (t.shape[k] < 0 || t.stride[k] < 0)
      throw ModelError(file, where, "is viewed with a negative size or stride");
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(t.shape[k]), &numel)) {
      throw ModelError(file, where, "is viewed with shape " + shape_string(t.shape) + ", too large");
    }
  }
  for (size_t k = 0; k < t.shape.size() && numel; ++k) {
    uint64_t reach = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(t.shape[k] - 1), static_cast<uint64_t>(t.stride[k]),
                               &reach) ||
        __builtin_add_overflow(last, reach, &last)) {
      throw ModelError(file, where, "is viewed with strides that overflow");
    }
  }
  // A view holding more elements than the storage span it covers repeats elements (a stride-0
  // view of one element shaped [16384, 16384] would materialise 1 GiB from 4 bytes): refused, so a
  // copy is never larger than its storage.
  const uint64_t span = last - static_cast<uint64_t>(t.offset) + 1;
  if (numel > span) {
    throw ModelError(file, where,
                     "is viewed with shape " + shape_string(t.shape) + " and strides " +
                         shape_string(t.stride) + ", which repeat its elements (" + std::to_string(numel) +
                         " elements over " + std::to_string(span) + " stored)");
  }
  uint64_t end_bytes = 0;
  if (numel && (__builtin_add_overflow(last, 1, &end_bytes) ||
                __builtin_mul_overflow(end_bytes, esize, &end_bytes) || end_bytes > storage_bytes)) {
    throw ModelError(file, where,
                     "is too small (" + std::to_string(storage_bytes) + " bytes) for a tensor of shape " +
                         shape_string(t.shape) + " at offset " + std::to_string(t.offset));
  }
  bool contiguous = true;
  int64_t expect = 1;
  for (size_t k = t.shape.size(); k-- > 0;) {
    if (t.shape[k] != 1 && t.stride[k] != expect) contiguous = false;
    expect *= t.shape[k];
  }
  t.materialized.dtype = t.dtype;
  t.materialized.shape = t.shape;
  t.materialized.nbytes = numel * esize;
  if (numel == 0) {
    t.materialized.data = s.data;
    return;
  }
  if (contiguous) {
    t.materialized.data = s.data + static_cast<size_t>(t.offset) * esize;
    t.owner = s.owner;
    return;
  }
  // Strided view: gather into a contiguous copy, walking the index like an odometer.
  auto buffer = std::make_shared<std::vector<std::byte>>(t.materialized.nbytes);
  std::vector<int64_t> idx(t.shape.size(), 0);
  for (uint64_t i = 0; i < numel; ++i) {
    int64_t src = t.offset;
    for (size_t k = 0; k < idx.size(); ++k) src += idx[k] * t.stride[k];
    std::memcpy(buffer->data() + i * esize, s.data + static_cast<size_t>(src) * esize, esize);
    for (size_t k = idx.size(); k-- > 0;) {
      if (++idx[k] < t.shape[k]) break;
      idx[k] = 0;
    }
  }
  t.materialized.data = buffer->data();
  t.owner = buffer;
}

// ---- state-dict view ----

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

std::string key_text(const PickleRef& k) {
  if (k->kind == Kind::String) return k->text;
  if (k->kind == Kind::Int) return std::to_string(k->integer);
  return "";
}

bool is_module(const PickleRef& v) {
  return v->kind == Kind::Object && v->state && v->state->kind == Kind::Dict && v->state->get("_parameters");
}

// Names every tensor under a value, walking each container once (see state_dict_from_pickle).
class Flattener {
 public:
  Flattener(StateDict& dict, const std::string& file) : dict_(dict), file_(file) {}

  void flatten(const PickleRef& v, const std::string& prefix) {
    switch (v->kind) {
      case Kind::Tensor:
        add_tensor(prefix, v);
        break;
      case Kind::Dict:
        walk_once(v, prefix, [&] {
          for (const auto& [k, c] : v->entries) {
            const std::string key = key_text(k);
            if (!key.empty()) flatten(c, join(prefix, key));
          }
        });
        break;
      case Kind::List:
      case Kind::Tuple:
        walk_once(v, prefix, [&] {
          for (size_t i = 0; i < v->items.size(); ++i) flatten(v->items[i], join(prefix, std::to_string(i)));
        });
        break;
      case Kind::Object:
        if (is_module(v)) flatten_module(v, prefix);
        break;
      default:
        break;
    }
  }

  // torch's state_dict(): own parameters, own persistent buffers, then each child module.
  void flatten_module(const PickleRef& module, const std::string& prefix) {
    walk_once(module, prefix, [&] {
      const PickleRef& state = module->state;
      std::set<std::string> non_persistent;
      if (auto np = state->get("_non_persistent_buffers_set"); np && np->kind == Kind::Set) {
        for (const auto& item : np->items) non_persistent.insert(key_text(item));
      }
      for (const char* field : {"_parameters", "_buffers"}) {
        PickleRef members = state->get(field);
        if (!members || members->kind != Kind::Dict) continue;
        for (const auto& [k, v] : members->entries) {
          const std::string name = key_text(k);
          if (v->kind != Kind::Tensor) continue;  // None entries (e.g. bias=False)
          if (std::string(field) == "_buffers" && non_persistent.count(name)) continue;
          add_tensor(join(prefix, name), v);
        }
      }
      if (PickleRef children = state->get("_modules"); children && children->kind == Kind::Dict) {
        for (const auto& [k, child] : children->entries) {
          if (child->kind == Kind::Object && is_module(child))
            flatten_module(child, join(prefix, key_text(k)));
        }
      }
    });
  }

 private:
  struct FirstVisit {
    std::string prefix;
    size_t tensors = 0;  // names it produced
  };

  // Walks `node` the first time it is reached. Reached again (the pickle memo shares it), it is
  // skipped when it named no tensor, and refused when it did: a checkpoint names each tensor once,
  // and a DAG of shared containers would otherwise name 2^depth of them.
  template <typename Walk>
  void walk_once(const PickleRef& node, const std::string& prefix, Walk walk) {
    auto [it, fresh] = visited_.try_emplace(node.get());
    if (!fresh) {
      if (it->second.tensors == 0) return;
      throw ModelError(file_, prefix.empty() ? "<root>" : prefix,
                       "holds the same " + std::to_string(it->second.tensors) + " tensor(s) as '" +
                           it->second.prefix + "' (a shared sub-tree; a checkpoint names each tensor once)");
    }
    const size_t before = dict_.size();
    walk();
    FirstVisit& first = visited_[node.get()];  // `it` may be invalidated by the walk
    first.prefix = prefix;
    first.tensors = dict_.size() - before;
  }

  void add_tensor(const std::string& name, const PickleRef& v) {
    name_bytes_ += name.size();
    if (dict_.size() >= kMaxTensors || name_bytes_ > kMaxNameBytes) {
      throw ModelError(file_, name,
                       "is one tensor name too many (a checkpoint holds at most " +
                           std::to_string(kMaxTensors) + " tensors, " + std::to_string(kMaxNameBytes >> 20) +
                           " MiB of names)");
    }
    dict_.add(name, v->tensor->materialized);
    if (v->tensor->owner) dict_.keep_alive(v->tensor->owner);
  }

  StateDict& dict_;
  const std::string& file_;
  std::unordered_map<const PickleValue*, FirstVisit> visited_;
  size_t name_bytes_ = 0;
};

void describe_into(const PickleRef& v, size_t max_items, size_t depth, std::string& out) {
  if (!v) {
    out += "<null>";
    return;
  }
  if (depth > 6) {
    out += "...";
    return;
  }
  auto list = [&](const std::vector<PickleRef>& items, const char* open, const char* close) {
    out += open;
    for (size_t i = 0; i < items.size() && i < max_items; ++i) {
      if (i) out += ", ";
      describe_into(items[i], max_items, depth + 1, out);
    }
    if (items.size() > max_items) out += ", ... (" + std::to_string(items.size()) + " items)";
    out += close;
  };
  switch (v->kind) {
    case Kind::None:
      out += "None";
      break;
    case Kind::Bool:
      out += v->boolean ? "True" : "False";
      break;
    case Kind::Int:
      out += std::to_string(v->integer);
      break;
    case Kind::BigInt:
      out += "<int of " + std::to_string(v->text.size()) + " bytes>";
      break;
    case Kind::Float:
      out += std::to_string(v->number);
      break;
    case Kind::String:
      out += "'" + v->text.substr(0, 64) + "'";
      break;
    case Kind::Bytes:
      out += "b<" + std::to_string(v->text.size()) + " bytes>";
      break;
    case Kind::List:
      list(v->items, "[", "]");
      break;
    case Kind::Tuple:
      list(v->items, "(", ")");
      break;
    case Kind::Set:
      list(v->items, "{", "}");
      break;
    case Kind::Dict:
      out += "{";
      for (size_t i = 0; i < v->entries.size() && i < max_items; ++i) {
        if (i) out += ", ";
        describe_into(v->entries[i].first, max_items, depth + 1, out);
        out += ": ";
        describe_into(v->entries[i].second, max_items, depth + 1, out);
      }
      if (v->entries.size() > max_items) out += ", ... (" + std::to_string(v->entries.size()) + " items)";
      out += "}";
      break;
    case Kind::Global:
      out += "<global " + v->text + ">";
      break;
    case Kind::Object:
      out += "<" + v->text;
      if (v->state) {
        out += " ";
        describe_into(v->state, max_items, depth + 1, out);
      }
      out += ">";
      break;
    case Kind::Tensor:
      out += std::string("tensor ") + dtype_name(v->tensor->dtype) + " " + shape_string(v->tensor->shape);
      break;
    case Kind::Storage:
      out += std::string("storage ") + dtype_name(v->storage->dtype);
      break;
  }
}

}  // namespace

PickleRef unpickle(const std::byte* bytes, size_t size, const PersistentLoad& persistent_load,
                   const std::string& file, size_t* consumed, UnpickleLimits limits) {
  Unpickler u(bytes, size, persistent_load, file, limits);
  return u.run(consumed);
}

std::vector<std::shared_ptr<TensorRef>> collect_tensors(const PickleRef& root) {
  std::unordered_set<const PickleValue*> seen;
  std::vector<std::shared_ptr<TensorRef>> out;
  walk_tensors(root, seen, out);
  return out;
}

void materialize_tensors(const PickleRef& root, const std::string& file) {
  for (const auto& t : collect_tensors(root)) materialize(*t, file);
}

StateDict state_dict_from_pickle(const PickleRef& root, const std::string& file, const std::string& format) {
  StateDict dict(file, format);
  Flattener flattener(dict, file);
  if (root->kind == Kind::Dict) {
    for (const char* key : {"model", "state_dict"}) {
      if (PickleRef inner = root->get(key); inner && (inner->kind == Kind::Dict || is_module(inner))) {
        flattener.flatten(inner, "");
        return dict;
      }
    }
  }
  flattener.flatten(root, "");
  return dict;
}

std::string describe(const PickleRef& value, size_t max_items) {
  std::string out;
  describe_into(value, max_items, 0, out);
  return out;
}

// Exposed so the container readers can build storage nodes.
PickleRef make_storage_value(std::shared_ptr<Storage> storage) {
  auto v = std::make_shared<PickleValue>();
  v->kind = Kind::Storage;
  v->storage = std::move(storage);
  return v;
}

std::optional<DType> storage_dtype_of(const std::string& global_name) {
  return storage_dtype(global_name);
}

bool allowed_global(const std::string& module, const std::string& name) {
  // What torch.save writes for tensors, parameters, storages, dtypes, state dicts and module
  // bookkeeping (_non_persistent_buffers_set, protocol-2 bytes); interpreted by Unpickler::call.
  static const std::set<std::string> kInterpreted = {"torch._utils._rebuild_tensor",
                                                     "torch._utils._rebuild_tensor_v2",
                                                     "torch._utils._rebuild_tensor_v3",
                                                     "torch._utils._rebuild_parameter",
                                                     "torch._utils._rebuild_parameter_with_state",
                                                     "torch._tensor._rebuild_from_type_v2",
                                                     "torch.nn.parameter.Parameter",
                                                     "torch.Size",
                                                     "collections.OrderedDict",
                                                     "builtins.dict",
                                                     "builtins.set",
                                                     "builtins.frozenset",
                                                     "builtins.tuple",
                                                     "_codecs.encode"};
  // Classes checkpoints pickle whole, kept as opaque objects: the original tool's classifier
  // (torch.save(model) from train.py, or imported from it), fair-esm's argparse args, numpy scalars
  // and arrays (training metadata), torch.device; torch.nn module classes are matched below.
  static const std::set<std::string> kOpaque = {"__main__.MLPClassifier",
                                                "train.MLPClassifier",
                                                "prediction.MLPClassifier",
                                                "argparse.Namespace",
                                                "torch.device",
                                                "numpy.dtype",
                                                "numpy.ndarray",
                                                "numpy.core.multiarray.scalar",
                                                "numpy.core.multiarray._reconstruct",
                                                "numpy._core.multiarray.scalar",
                                                "numpy._core.multiarray._reconstruct",
                                                "builtins.list",
                                                "builtins.int",
                                                "builtins.float",
                                                "builtins.complex",
                                                "builtins.bool",
                                                "builtins.str",
                                                "builtins.bytes",
                                                "builtins.bytearray"};
  const std::string full = module + "." + name;
  if (kInterpreted.count(full) || kOpaque.count(full)) return true;
  if (storage_dtype(full) || torch_dtype(full)) return true;
  // torch.nn.modules.<file>.<Class>: a module's class, created by __new__ and filled by BUILD
  // (never called); functions of those files are not allowed.
  const bool nn_class =
      module.starts_with("torch.nn.modules.") && std::isupper(static_cast<unsigned char>(name[0]));
  return nn_class &&
         name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") ==
             std::string::npos;
}

}  // namespace vnp::weights
