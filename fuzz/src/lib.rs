//! What the fuzz targets share: arbitrary WIT types (rendered as component-model WAT and read
//! back from a type-only component, since wasmtime builds `Type`s only from components),
//! arbitrary JSON, and a real host started in this process on a loopback port, driven over HTTP
//! as any client would.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Unstructured;
use serde_json::Value;
use wasmtime::component::Component;
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::{Config, Engine};

/// A WIT type, as fuzz input builds it ([`type_tree`]).
#[derive(Debug)]
pub enum TypeTree {
    Bool,
    S8,
    U8,
    S16,
    U16,
    S32,
    U32,
    S64,
    U64,
    F32,
    F64,
    Char,
    String,
    List(Box<TypeTree>),
    FixedList(Box<TypeTree>, u8),
    Map(Box<TypeTree>, Box<TypeTree>),
    Option(Box<TypeTree>),
    Result(Option<Box<TypeTree>>, Option<Box<TypeTree>>),
    Tuple(Vec<TypeTree>),
    Record(Vec<TypeTree>),
    Variant(Vec<Option<TypeTree>>),
    Enum(u8),
    Flags(u8),
}

/// A type from fuzz input, nested at most [`MAX_DEPTH`] deep.
pub fn type_tree(u: &mut Unstructured<'_>, depth: usize) -> arbitrary::Result<TypeTree> {
    let last = if depth >= MAX_DEPTH { 12 } else { 22 };
    let boxed = |u: &mut Unstructured<'_>| type_tree(u, depth + 1).map(Box::new);
    Ok(match u.int_in_range(0..=last)? {
        0 => TypeTree::Bool,
        1 => TypeTree::S8,
        2 => TypeTree::U8,
        3 => TypeTree::S16,
        4 => TypeTree::U16,
        5 => TypeTree::S32,
        6 => TypeTree::U32,
        7 => TypeTree::S64,
        8 => TypeTree::U64,
        9 => TypeTree::F32,
        10 => TypeTree::F64,
        11 => TypeTree::Char,
        12 => TypeTree::String,
        13 => TypeTree::List(boxed(u)?),
        14 => TypeTree::FixedList(boxed(u)?, u.arbitrary()?),
        15 => TypeTree::Map(boxed(u)?, boxed(u)?),
        16 => TypeTree::Option(boxed(u)?),
        17 => {
            let ok = if u.arbitrary()? {
                Some(boxed(u)?)
            } else {
                None
            };
            let err = if u.arbitrary()? {
                Some(boxed(u)?)
            } else {
                None
            };
            TypeTree::Result(ok, err)
        }
        18 | 19 => {
            let n = u.int_in_range(1..=MAX_ITEMS)?;
            let items = (0..n)
                .map(|_| type_tree(u, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            if u.arbitrary()? {
                TypeTree::Tuple(items)
            } else {
                TypeTree::Record(items)
            }
        }
        20 => {
            let n = u.int_in_range(1..=MAX_ITEMS)?;
            let cases = (0..n)
                .map(|_| match u.arbitrary()? {
                    true => type_tree(u, depth + 1).map(Some),
                    false => Ok(None),
                })
                .collect::<Result<Vec<_>, _>>()?;
            TypeTree::Variant(cases)
        }
        21 => TypeTree::Enum(u.arbitrary()?),
        _ => TypeTree::Flags(u.arbitrary()?),
    })
}

/// Nesting beyond this renders as `u8`: deep enough for every mapping rule, shallow enough to
/// compile fast.
const MAX_DEPTH: usize = 5;
/// Fields, cases and elements per composite type.
const MAX_ITEMS: usize = 6;

/// A component exporting `tree` as type `root`, with every nominal type it uses exported under
/// a name of its own (the component model insists).
pub fn component_wat(tree: &TypeTree) -> String {
    let mut defs = String::new();
    let mut next = 0;
    let root = render(tree, 0, &mut defs, &mut next);
    match root.starts_with('$') {
        // a nominal type is exported already; export it again as the root
        true => format!("(component {defs} (export \"root\" (type {root})))"),
        false => format!("(component {defs} (type $root' {root}) (export \"root\" (type $root')))"),
    }
}

fn render(tree: &TypeTree, depth: usize, defs: &mut String, next: &mut usize) -> String {
    if depth > MAX_DEPTH {
        return "u8".into();
    }
    let mut inner = |t: &TypeTree| render(t, depth + 1, defs, next);
    let simple = match tree {
        TypeTree::Bool => "bool",
        TypeTree::S8 => "s8",
        TypeTree::U8 => "u8",
        TypeTree::S16 => "s16",
        TypeTree::U16 => "u16",
        TypeTree::S32 => "s32",
        TypeTree::U32 => "u32",
        TypeTree::S64 => "s64",
        TypeTree::U64 => "u64",
        TypeTree::F32 => "f32",
        TypeTree::F64 => "f64",
        TypeTree::Char => "char",
        TypeTree::String => "string",
        _ => "",
    };
    if !simple.is_empty() {
        return simple.into();
    }
    let nominal = |body: String, defs: &mut String, next: &mut usize| {
        let n = *next;
        *next += 1;
        defs.push_str(&format!(
            "(type $t{n}' {body}) (export $t{n} \"t{n}\" (type $t{n}')) "
        ));
        format!("$t{n}")
    };
    match tree {
        TypeTree::List(t) => format!("(list {})", inner(t)),
        TypeTree::FixedList(t, n) => format!("(list {} {})", inner(t), (*n % 8).max(1)),
        TypeTree::Map(k, v) => {
            // keys are strings or integers only
            let key = match **k {
                TypeTree::String => "string",
                TypeTree::U32 => "u32",
                TypeTree::S64 => "s64",
                _ => "string",
            };
            format!("(map {key} {})", inner(v))
        }
        TypeTree::Option(t) => format!("(option {})", inner(t)),
        TypeTree::Result(ok, err) => {
            let ok = ok.as_ref().map(|t| inner(t)).unwrap_or_default();
            let err = err
                .as_ref()
                .map(|t| format!("(error {})", inner(t)))
                .unwrap_or_default();
            format!("(result {ok} {err})")
        }
        TypeTree::Tuple(items) => {
            let items: Vec<String> = items.iter().take(MAX_ITEMS).map(&mut inner).collect();
            match items.is_empty() {
                true => "(tuple u8)".into(),
                false => format!("(tuple {})", items.join(" ")),
            }
        }
        TypeTree::Record(fields) => {
            let mut body: Vec<String> = fields
                .iter()
                .take(MAX_ITEMS)
                .enumerate()
                .map(|(i, t)| format!("(field \"f{i}\" {})", inner(t)))
                .collect();
            if body.is_empty() {
                body.push("(field \"f0\" u8)".into());
            }
            nominal(format!("(record {})", body.join(" ")), defs, next)
        }
        TypeTree::Variant(cases) => {
            let mut body: Vec<String> = cases
                .iter()
                .take(MAX_ITEMS)
                .enumerate()
                .map(|(i, t)| match t {
                    Some(t) => format!("(case \"c{i}\" {})", inner(t)),
                    None => format!("(case \"c{i}\")"),
                })
                .collect();
            if body.is_empty() {
                body.push("(case \"c0\")".into());
            }
            nominal(format!("(variant {})", body.join(" ")), defs, next)
        }
        TypeTree::Enum(n) => {
            let names: Vec<String> = (0..(*n as usize % MAX_ITEMS).max(1))
                .map(|i| format!("\"e{i}\""))
                .collect();
            nominal(format!("(enum {})", names.join(" ")), defs, next)
        }
        TypeTree::Flags(n) => {
            let names: Vec<String> = (0..(*n as usize % 33).max(1))
                .map(|i| format!("\"g{i}\""))
                .collect();
            nominal(format!("(flags {})", names.join(" ")), defs, next)
        }
        _ => unreachable!("simple types returned above"),
    }
}

fn type_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model_map(true);
        config.wasm_component_model_fixed_length_lists(true);
        Engine::new(&config).expect("an engine for type-only components")
    })
}

/// The type `tree` describes, compiled once per distinct rendering.
pub fn compile_type(tree: &TypeTree) -> Type {
    thread_local! {
        static CACHE: std::cell::RefCell<HashMap<String, Type>> = Default::default();
    }
    let wat = component_wat(tree);
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(ty) = cache.get(&wat) {
            return ty.clone();
        }
        let engine = type_engine();
        let component = Component::new(engine, &wat)
            .unwrap_or_else(|e| panic!("a generated type does not compile: {e:?}\n{wat}"));
        let ty = component
            .component_type()
            .exports(engine)
            .find_map(|(name, export)| match (name, export.ty) {
                ("root", ComponentItem::Type(ty)) => Some(ty),
                _ => None,
            })
            .expect("the root type is exported");
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(wat, ty.clone());
        ty
    })
}

/// Arbitrary JSON, shaped like the JSON the mapping reads (nested arrays and objects with
/// short keys, numbers at the integer and float edges).
pub fn json(u: &mut Unstructured<'_>, depth: usize) -> arbitrary::Result<Value> {
    let kind = if depth > MAX_DEPTH {
        u.int_in_range(0..=4)?
    } else {
        u.int_in_range(0..=6)?
    };
    Ok(match kind {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => {
            let edges = [
                0.0,
                -1.0,
                1.5,
                255.0,
                256.0,
                -129.0,
                4294967295.0,
                1e300,
                -0.0,
            ];
            match u.int_in_range(0..=3)? {
                0 => Value::from(u.arbitrary::<i64>()?),
                1 => Value::from(u.arbitrary::<u64>()?),
                2 => serde_json::Number::from_f64(u.arbitrary::<f64>()?)
                    .map_or(Value::Null, Value::Number),
                _ => serde_json::json!(edges[u.choose_index(edges.len())?]),
            }
        }
        3 => {
            let words = [
                "c0",
                "c1",
                "e0",
                "e1",
                "g0",
                "g1",
                "tag",
                "val",
                "ok",
                "err",
                "none",
                "some",
                "NaN",
                "inf",
                "-inf",
                "",
                "\u{1f600}",
            ];
            match u.arbitrary::<bool>()? {
                true => Value::String(words[u.choose_index(words.len())?].into()),
                false => Value::String(u.arbitrary()?),
            }
        }
        4 => Value::Array(Vec::new()),
        5 => {
            let n = u.int_in_range(0..=MAX_ITEMS)?;
            Value::Array(
                (0..n)
                    .map(|_| json(u, depth + 1))
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => {
            let keys = ["f0", "f1", "f2", "tag", "val", "ok", "err", "c0", "x"];
            let n = u.int_in_range(0..=MAX_ITEMS)?;
            let mut map = serde_json::Map::new();
            for _ in 0..n {
                map.insert(
                    keys[u.choose_index(keys.len())?].into(),
                    json(u, depth + 1)?,
                );
            }
            Value::Object(map)
        }
    })
}

/// A host running in this process (a multi-threaded tokio runtime of its own) on a loopback
/// port, with a temporary data dir; started once per fuzzing process.
pub struct InProcessHost {
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl InProcessHost {
    /// The process's host, started with `config` (`wasmdo.toml` text) on first use.
    pub fn get(config: &str) -> &'static InProcessHost {
        static HOST: OnceLock<InProcessHost> = OnceLock::new();
        HOST.get_or_init(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("wasmdo.toml");
            std::fs::write(&path, config).expect("write the config");
            let mut config = wasmdo_host::config::Config::load(&path).expect("a valid fuzz config");
            config.listen = "127.0.0.1:0".parse().expect("address");
            config.data = Some(dir.path().join("data"));
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let host = runtime
                .block_on(wasmdo_host::Host::start(config))
                .expect("the host starts");
            let addr = host.addr();
            std::thread::spawn(move || runtime.block_on(host.serve()));
            InProcessHost { addr, _dir: dir }
        })
    }

    /// Sends one request (`Connection: close`) and returns the status and body.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let mut stream = self.connect();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: fuzz\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("write the head");
        let _ = stream.write_all(body);
        read_response(&mut stream)
    }

    /// A connection to the host.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("the host accepts connections");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        stream
    }

    /// Panics unless the host still answers its health check.
    pub fn assert_alive(&self) {
        let (status, body) = self.request("GET", "/_admin/health", b"");
        assert_eq!(status, 200, "health: {}", String::from_utf8_lossy(&body));
    }
}

/// Reads a whole `Connection: close` response: (status, body).
pub fn read_response(stream: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = match bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => bytes[at + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

/// Panics unless `body` is the JSON error shape every refusal has.
pub fn assert_json_error(status: u16, body: &[u8]) {
    let value: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "a {status} reply is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    assert!(
        value["error"].is_string() && value["kind"].is_string(),
        "a {status} reply is not a JSON error: {value}"
    );
}
