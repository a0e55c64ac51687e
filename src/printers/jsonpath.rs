//! `-o jsonpath=TEMPLATE`: the subset of kubectl's JSONPath that scripts use —
//! `{.a.b[0].c}`, `['key.with.dots']`, `[*]`, `{range EXPR}...{end}`, and
//! `{"literal"}` text with `\n` and `\t`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// Renders `template` against `root`, or says what is wrong with the template.
pub fn render(template: &str, root: &Value) -> Result<String, String> {
    let tokens = tokenize(template)?;
    let mut pos = 0;
    let nodes = parse(&tokens, &mut pos, false)?;
    let mut out = String::new();
    emit(&nodes, root, &mut out)?;
    Ok(out)
}

enum Token {
    Text(String),
    Expr(String),
}

fn tokenize(t: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut rest = t;
    while !rest.is_empty() {
        match rest.find('{') {
            Some(0) => {
                let end = rest
                    .find('}')
                    .ok_or_else(|| format!("unclosed action in template {t:?}"))?;
                out.push(Token::Expr(rest[1..end].trim().to_string()));
                rest = &rest[end + 1..];
            }
            Some(i) => {
                out.push(Token::Text(rest[..i].to_string()));
                rest = &rest[i..];
            }
            None => {
                out.push(Token::Text(rest.to_string()));
                rest = "";
            }
        }
    }
    Ok(out)
}

fn parse(tokens: &[Token], pos: &mut usize, in_range: bool) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        let tok = &tokens[*pos];
        *pos += 1;
        match tok {
            Token::Text(s) => nodes.push(Node::Text(s.clone())),
            Token::Expr(e) if e == "end" => {
                return if in_range {
                    Ok(nodes)
                } else {
                    Err("{end} without {range}".into())
                };
            }
            Token::Expr(e) if e.starts_with("range ") => {
                let path = path(e["range ".len()..].trim())?;
                let body = parse(tokens, pos, true)?;
                nodes.push(Node::Range(path, body));
            }
            Token::Expr(e) if e.starts_with('"') => {
                let inner = e
                    .strip_prefix('"')
                    .and_then(|x| x.strip_suffix('"'))
                    .ok_or_else(|| format!("unterminated string {e}"))?;
                nodes.push(Node::Text(inner.replace("\\n", "\n").replace("\\t", "\t")));
            }
            Token::Expr(e) => nodes.push(Node::Path(path(e)?)),
        }
    }
    if in_range {
        return Err("{range} without {end}".into());
    }
    Ok(nodes)
}

fn path(e: &str) -> Result<Vec<Step>, String> {
    let bad = |why: &str| format!("invalid JSONPath {e:?}: {why}");
    let mut s = e.strip_prefix('$').unwrap_or(e);
    let mut steps = Vec::new();
    while !s.is_empty() {
        if let Some(r) = s.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            match name {
                "" if end == r.len() => {}
                "" => {}
                "*" => steps.push(Step::All),
                n => steps.push(Step::Field(n.to_string())),
            }
            s = &r[end..];
        } else if let Some(r) = s.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| bad("unclosed ["))?;
            let inner = r[..end].trim();
            if inner == "*" {
                steps.push(Step::All);
            } else if let Some(q) = inner
                .strip_prefix('\'')
                .and_then(|x| x.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
            {
                steps.push(Step::Field(q.to_string()));
            } else {
                let i = inner
                    .parse()
                    .map_err(|_| bad("an index must be a number, * or 'name'"))?;
                steps.push(Step::Index(i));
            }
            s = &r[end + 1..];
        } else {
            return Err(bad("a path starts with '.'"));
        }
    }
    Ok(steps)
}

fn select<'a>(root: &'a Value, steps: &[Step]) -> Vec<&'a Value> {
    let mut cur = vec![root];
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            match (step, v) {
                (Step::Field(f), Value::Object(m)) => next.extend(m.get(f)),
                (Step::Index(i), Value::Array(a)) => next.extend(a.get(*i)),
                (Step::All, Value::Array(a)) => next.extend(a.iter()),
                (Step::All, Value::Object(m)) => next.extend(m.values()),
                _ => {}
            }
        }
        cur = next;
    }
    cur
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn emit(nodes: &[Node], root: &Value, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(p) => {
                let vals: Vec<String> = select(root, p).into_iter().map(text).collect();
                out.push_str(&vals.join(" "));
            }
            Node::Range(p, body) => {
                for v in select(root, p) {
                    emit(body, v, out)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_render_like_kubectl() {
        let list = json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}}, "spec": {"replicas": 2}},
            {"metadata": {"name": "b"}, "spec": {"replicas": 3}},
        ]});
        let cases = [
            ("{.items[*].metadata.name}", "a b"),
            ("{.items[0].spec.replicas}", "2"),
            ("{.items[0].metadata.labels['app.kubernetes.io/name']}", "x"),
            (
                "{range .items[*]}{.metadata.name}={.spec.replicas}{\"\\n\"}{end}",
                "a=2\nb=3\n",
            ),
            ("names: {.items[*].metadata.name}!", "names: a b!"),
            ("{.kind}", "List"),
            ("{.missing}", ""),
            ("{$.items[1].spec}", "{\"replicas\":3}"),
        ];
        for (t, want) in cases {
            assert_eq!(render(t, &list).unwrap(), want, "{t}");
        }
        for (bad, why) in [
            ("{.items[", "unclosed"),
            ("{range .items[*]}{.x}", "without {end}"),
            ("{end}", "without {range}"),
            ("{items}", "starts with '.'"),
            ("{.items[x]}", "must be a number"),
        ] {
            let e = render(bad, &list).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
