use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of the transformer plugin (Higress `transformer` field names).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Transformations of the request: headers, query parameters and JSON body fields, applied
    /// in the order given. At least one of `reqRules` and `respRules` must be non-empty.
    #[serde(default)]
    pub req_rules: Vec<Rule>,
    /// Transformations of the response: headers and JSON body fields (no `querys`), applied in
    /// the order given.
    #[serde(default)]
    pub resp_rules: Vec<Rule>,
}

/// One transformation: an operation applied to the listed headers, query parameters and body
/// fields (in that order within the rule).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// The operation: `remove`, `rename`, `replace`, `add`, `append` or `map`.
    pub operate: Operate,
    /// Where `map` reads `fromKey`: `headers`, `querys` or `body` (required for `map`, not
    /// allowed otherwise). `body` can only be mapped into `body`; `querys` is request-only.
    #[serde(default)]
    pub map_source: Option<MapSource>,
    /// Header items (names are case-insensitive; pseudo-headers such as `:path` are refused).
    #[serde(default)]
    pub headers: Vec<Item>,
    /// Query parameter items (request only; names are case-sensitive).
    #[serde(default)]
    pub querys: Vec<Item>,
    /// JSON body field items. Keys are paths: `a.b.c` for nested objects, a number selects an
    /// array element, `\.` is a literal dot in a key.
    #[serde(default)]
    pub body: Vec<Item>,
}

/// The operation of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Operate {
    /// Delete `key` if present.
    Remove,
    /// Move the value of `oldKey` to `newKey` (replacing `newKey`); nothing if `oldKey` is absent.
    Rename,
    /// Set `key` to `newValue`, only if `key` exists.
    Replace,
    /// Set `key` to `value`, only if `key` is absent.
    Add,
    /// Add `appendValue` to `key`: another header/query value, or a JSON array element (a
    /// scalar becomes an array). Same as `add` when `key` is absent.
    Append,
    /// Copy the value of `fromKey` (read from `mapSource`) to `toKey`, replacing `toKey`.
    Map,
}

/// The source `map` reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MapSource {
    /// Headers of the same direction (request or response).
    Headers,
    /// Request query parameters (reqRules only).
    Querys,
    /// The JSON body of the same direction (only into `body`).
    Body,
}

/// The type a body value (`value`, `newValue`, `appendValue`) is converted to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// A JSON string (the default).
    #[default]
    String,
    /// A JSON number: the value must be a number, e.g. `"42"` or `"1.5"`.
    Number,
    /// A JSON boolean: the value must be `true` or `false`.
    Boolean,
    /// A JSON object: the value must be JSON object text, e.g. `{"a":1}`.
    Object,
    /// A JSON array: the value must be JSON array text, e.g. `[1,2]`.
    Array,
}

/// A scalar config value, taken as text (numbers and booleans are accepted for YAML/Higress
/// compatibility: `1` is the same as `"1"`).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    /// The value as text.
    pub fn text(&self) -> String {
        match self {
            Scalar::Text(s) => s.clone(),
            Scalar::Int(n) => n.to_string(),
            Scalar::UInt(n) => n.to_string(),
            Scalar::Float(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// One header, query parameter or body field of a rule. Which fields are required depends on
/// the rule's `operate`: remove `key`; rename `oldKey`+`newKey`; replace `key`+`newValue`;
/// add `key`+`value`; append `key`+`appendValue`; map `fromKey`+`toKey`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Item {
    /// The target name or path (remove, replace, add, append).
    #[serde(default)]
    pub key: Option<String>,
    /// The name or path to rename (rename).
    #[serde(default)]
    pub old_key: Option<String>,
    /// The new name or path (rename).
    #[serde(default)]
    pub new_key: Option<String>,
    /// The new value (replace).
    #[serde(default)]
    pub new_value: Option<Scalar>,
    /// The value to add (add).
    #[serde(default)]
    pub value: Option<Scalar>,
    /// The value to append (append).
    #[serde(default)]
    pub append_value: Option<Scalar>,
    /// The name or path read from `mapSource` (map).
    #[serde(default)]
    pub from_key: Option<String>,
    /// The name or path written (map).
    #[serde(default)]
    pub to_key: Option<String>,
    /// For body items of add/replace/append: the JSON type of the value (default `string`).
    /// Ignored for headers and query parameters.
    #[serde(default, rename = "value_type")]
    pub value_type: ValueType,
}
