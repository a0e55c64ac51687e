//! RFC 6902 JSON patch with RFC 6901 JSON pointers.

use serde_json::Value;

use super::{PatchError, Result};

/// Applies an RFC 6902 JSON patch (add, remove, replace, move, copy, test) to a
/// copy of `target`. Atomic: the first failing operation aborts the whole patch,
/// and the error names its index and path. Unknown members of an operation are
/// ignored, as the RFC requires.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value> {
    let ops = patch.as_array().ok_or_else(|| {
        PatchError::InvalidJsonPatch("a JSON patch must be a list of operations".into())
    })?;
    let mut doc = target.clone();
    for (index, op) in ops.iter().enumerate() {
        let member = |name: &str| {
            op.get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        apply_op(&mut doc, op).map_err(|reason| PatchError::JsonPatchOp {
            index,
            op: Some(member("op"))
                .filter(|o| !o.is_empty())
                .unwrap_or_else(|| "?".into()),
            path: member("path"),
            reason,
        })?;
    }
    Ok(doc)
}

type OpResult<T> = std::result::Result<T, String>;

fn apply_op(doc: &mut Value, op: &Value) -> OpResult<()> {
    if !op.is_object() {
        return Err("an operation must be an object".into());
    }
    let string = |name: &str| -> OpResult<&str> {
        op.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("missing string member {name:?}"))
    };
    let value = || {
        op.get("value")
            .cloned()
            .ok_or_else(|| "missing member \"value\"".to_string())
    };
    let path = pointer(string("path")?)?;
    match string("op")? {
        "add" => add(doc, &path, value()?),
        "remove" => remove(doc, &path).map(drop),
        "replace" => {
            let v = value()?;
            *get_mut(doc, &path)? = v;
            Ok(())
        }
        "move" => {
            let from = pointer(string("from")?)?;
            if from == path {
                return Ok(());
            }
            if path.starts_with(&from) {
                return Err("cannot move a value into one of its own children".into());
            }
            let v = remove(doc, &from).map_err(|e| format!("from: {e}"))?;
            add(doc, &path, v)
        }
        "copy" => {
            let from = pointer(string("from")?)?;
            let v = get_mut(doc, &from)
                .map_err(|e| format!("from: {e}"))?
                .clone();
            add(doc, &path, v)
        }
        "test" => {
            let want = value()?;
            let have = get_mut(doc, &path)?;
            if json_eq(have, &want) {
                Ok(())
            } else {
                Err(format!("test failed: value is {have}, expected {want}"))
            }
        }
        other => Err(format!(
            "unknown operation {other:?}; use add, remove, replace, move, copy or test"
        )),
    }
}

/// Parses an RFC 6901 pointer into unescaped reference tokens.
fn pointer(p: &str) -> OpResult<Vec<String>> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err(format!(
            "invalid JSON pointer {p:?}: must be empty or start with '/'"
        ));
    };
    rest.split('/')
        .map(|t| {
            let bad_escape = t
                .match_indices('~')
                .any(|(i, _)| !matches!(t.as_bytes().get(i + 1), Some(b'0' | b'1')));
            if bad_escape {
                return Err(format!(
                    "invalid JSON pointer {p:?}: '~' must be followed by 0 or 1"
                ));
            }
            Ok(t.replace("~1", "/").replace("~0", "~"))
        })
        .collect()
}

fn index(token: &str, len: usize, allow_end: bool) -> OpResult<usize> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return Err(format!("invalid array index {token:?}"));
    }
    let i: usize = token
        .parse()
        .map_err(|_| format!("invalid array index {token:?}"))?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if i > max || (!allow_end && len == 0) {
        return Err(format!("array index {i} out of bounds (length {len})"));
    }
    Ok(i)
}

fn get_mut<'a>(doc: &'a mut Value, path: &[String]) -> OpResult<&'a mut Value> {
    let mut cur = doc;
    for (depth, t) in path.iter().enumerate() {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => {
                let i = index(t, a.len(), false)?;
                a.get_mut(i)
            }
            _ => None,
        }
        .ok_or_else(|| {
            format!(
                "path does not exist: no {:?} at {}",
                t,
                render(&path[..depth])
            )
        })?;
    }
    Ok(cur)
}

fn add(doc: &mut Value, path: &[String], v: Value) -> OpResult<()> {
    let Some((last, parent)) = path.split_last() else {
        *doc = v;
        return Ok(());
    };
    match get_mut(doc, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), v);
        }
        Value::Array(a) => {
            let i = index(last, a.len(), true)?;
            a.insert(i, v);
        }
        _ => {
            return Err(format!(
                "parent {} is not an object or a list",
                render(parent)
            ))
        }
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &[String]) -> OpResult<Value> {
    let Some((last, parent)) = path.split_last() else {
        return Err("cannot remove the whole document".into());
    };
    match get_mut(doc, parent)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("path does not exist: no {last:?} at {}", render(parent))),
        Value::Array(a) => {
            let i = index(last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err(format!(
            "parent {} is not an object or a list",
            render(parent)
        )),
    }
}

fn render(tokens: &[String]) -> String {
    if tokens.is_empty() {
        return "the root".into();
    }
    let escaped: Vec<String> = tokens
        .iter()
        .map(|t| t.replace('~', "~0").replace('/', "~1"))
        .collect();
    format!("\"/{}\"", escaped.join("/"))
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc6902_appendix_a() {
        // (section, target, patch, result or None for an error)
        let cases = [
            (
                "A.1",
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux"}]),
                Some(json!({"baz": "qux", "foo": "bar"})),
            ),
            (
                "A.2",
                json!({"foo": ["bar", "baz"]}),
                json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
                Some(json!({"foo": ["bar", "qux", "baz"]})),
            ),
            (
                "A.3",
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "remove", "path": "/baz"}]),
                Some(json!({"foo": "bar"})),
            ),
            (
                "A.4",
                json!({"foo": ["bar", "qux", "baz"]}),
                json!([{"op": "remove", "path": "/foo/1"}]),
                Some(json!({"foo": ["bar", "baz"]})),
            ),
            (
                "A.5",
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
                Some(json!({"baz": "boo", "foo": "bar"})),
            ),
            (
                "A.6",
                json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
                json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
                Some(json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}})),
            ),
            (
                "A.7",
                json!({"foo": ["all", "grass", "cows", "eat"]}),
                json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
                Some(json!({"foo": ["all", "cows", "eat", "grass"]})),
            ),
            (
                "A.8",
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
                json!([{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}]),
                Some(json!({"baz": "qux", "foo": ["a", 2, "c"]})),
            ),
            (
                "A.9",
                json!({"baz": "qux"}),
                json!([{"op": "test", "path": "/baz", "value": "bar"}]),
                None,
            ),
            (
                "A.10",
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
                Some(json!({"foo": "bar", "child": {"grandchild": {}}})),
            ),
            (
                "A.11",
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]),
                Some(json!({"foo": "bar", "baz": "qux"})),
            ),
            (
                "A.12",
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz/bat", "value": "qux"}]),
                None,
            ),
            (
                "A.14",
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": 10}]),
                Some(json!({"/": 9, "~1": 10})),
            ),
            (
                "A.15",
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": "10"}]),
                None,
            ),
            (
                "A.16",
                json!({"foo": ["bar"]}),
                json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
                Some(json!({"foo": ["bar", ["abc", "def"]]})),
            ),
        ];
        for (section, target, patch, want) in cases {
            let got = json_patch(&target, &patch);
            match want {
                Some(want) => assert_eq!(got.unwrap(), want, "{section}"),
                None => assert!(got.is_err(), "{section}: {got:?}"),
            }
        }
    }

    #[test]
    fn more_operations() {
        let doc = json!({"a": {"b": [1, 2]}, "c": 1});
        let cases = [
            (json!([{"op": "add", "path": "", "value": [1]}]), json!([1])),
            (
                json!([{"op": "replace", "path": "", "value": {"x": 1}}]),
                json!({"x": 1}),
            ),
            (
                json!([{"op": "replace", "path": "/a/b/0", "value": 9}]),
                json!({"a": {"b": [9, 2]}, "c": 1}),
            ),
            (
                json!([{"op": "add", "path": "/a/b/2", "value": 3}]),
                json!({"a": {"b": [1, 2, 3]}, "c": 1}),
            ),
            (
                json!([{"op": "copy", "from": "/a/b", "path": "/d"}]),
                json!({"a": {"b": [1, 2]}, "c": 1, "d": [1, 2]}),
            ),
            (
                json!([{"op": "move", "from": "/a", "path": "/a"}]),
                doc.clone(),
            ),
            (
                json!([{"op": "move", "from": "/c", "path": "/a/b/-"}]),
                json!({"a": {"b": [1, 2, 1]}}),
            ),
            (
                json!([{"op": "test", "path": "/c", "value": 1.0}]),
                doc.clone(),
            ),
            (
                json!([{"op": "add", "path": "/a~1b~0", "value": 0}]),
                json!({"a": {"b": [1, 2]}, "c": 1, "a/b~": 0}),
            ),
            (json!([]), doc.clone()),
        ];
        for (patch, want) in cases {
            assert_eq!(json_patch(&doc, &patch).unwrap(), want, "{patch}");
        }
    }

    #[test]
    fn errors_name_index_and_path_and_change_nothing() {
        let doc = json!({"a": {"b": [1, 2]}, "c": 1});
        let cases = [
            (json!({"op": "add"}), "invalid JSON patch: a JSON patch must be a list of operations"),
            (json!([1]), "JSON patch operation 0 (? \"\"): an operation must be an object"),
            (json!([{"op": "add", "path": "/x"}]), "JSON patch operation 0 (add \"/x\"): missing member \"value\""),
            (json!([{"op": "frob", "path": "/c"}]), "unknown operation \"frob\""),
            (json!([{"op": "remove"}]), "missing string member \"path\""),
            (json!([{"op": "add", "path": "/c", "value": 2}, {"op": "remove", "path": "/x/y"}]), "JSON patch operation 1 (remove \"/x/y\"): path does not exist: no \"x\" at the root"),
            (json!([{"op": "remove", "path": "/a/b/2"}]), "array index 2 out of bounds (length 2)"),
            (json!([{"op": "remove", "path": "/a/b/-"}]), "invalid array index \"-\""),
            (json!([{"op": "add", "path": "/a/b/01", "value": 0}]), "invalid array index \"01\""),
            (json!([{"op": "add", "path": "/a/b/3", "value": 0}]), "array index 3 out of bounds"),
            (json!([{"op": "add", "path": "/c/d", "value": 0}]), "parent \"/c\" is not an object or a list"),
            (json!([{"op": "replace", "path": "/z", "value": 0}]), "path does not exist: no \"z\" at the root"),
            (json!([{"op": "move", "from": "/a", "path": "/a/x"}]), "cannot move a value into one of its own children"),
            (json!([{"op": "copy", "from": "/q", "path": "/r"}]), "JSON patch operation 0 (copy \"/r\"): from: path does not exist"),
            (json!([{"op": "test", "path": "/c", "value": 2}]), "test failed: value is 1, expected 2"),
            (json!([{"op": "add", "path": "c", "value": 0}]), "invalid JSON pointer \"c\": must be empty or start with '/'"),
            (json!([{"op": "add", "path": "/~2", "value": 0}]), "'~' must be followed by 0 or 1"),
            (json!([{"op": "remove", "path": ""}]), "cannot remove the whole document"),
        ];
        for (patch, want) in cases {
            let err = json_patch(&doc, &patch)
                .expect_err(&patch.to_string())
                .to_string();
            assert!(err.contains(want), "{patch}: {err}");
        }
    }
}
