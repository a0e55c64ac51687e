//! Label selectors: the string grammar, `metav1.LabelSelector`, matching.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use super::{check_key, check_value, Result, SelectorError};

impl std::str::FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<LabelSelector> {
        LabelSelector::parse(s)
    }
}

/// A label requirement operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `k=v` / `k==v`: the label exists with this value.
    Equals,
    /// `k!=v`: the label is absent or has another value.
    NotEquals,
    /// `k in (a,b)`: the label exists with one of the values.
    In,
    /// `k notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `k`: the label exists.
    Exists,
    /// `!k`: the label does not exist.
    DoesNotExist,
}

/// One term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub op: Operator,
    /// Values, sorted; one for (Not)Equals, none for (DoesNot)Exist.
    pub values: BTreeSet<String>,
}

impl Requirement {
    /// Builds a requirement, validating the key, the values and their count.
    pub fn new(key: &str, op: Operator, values: Vec<String>) -> Result<Requirement> {
        check_key(key)?;
        for v in &values {
            check_value(key, v)?;
        }
        let bad = |reason: &str| {
            Err(SelectorError::Values {
                key: key.to_string(),
                reason: reason.to_string(),
            })
        };
        match op {
            Operator::Equals | Operator::NotEquals if values.len() != 1 => {
                return bad("exact-match operators need exactly one value")
            }
            Operator::In | Operator::NotIn if values.is_empty() => {
                return bad("for 'in', 'notin' operators, values set can't be empty")
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return bad("values set must be empty for exists and does not exist")
            }
            _ => {}
        }
        Ok(Requirement {
            key: key.to_string(),
            op,
            values: values.into_iter().collect(),
        })
    }

    /// Whether a label set satisfies this requirement.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        let value = labels.get(&self.key);
        let in_set = || {
            value
                .and_then(Value::as_str)
                .is_some_and(|v| self.values.contains(v))
        };
        match self.op {
            Operator::Equals | Operator::In => in_set(),
            Operator::NotEquals | Operator::NotIn => !in_set(),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.values.iter().next().map_or("", String::as_str);
        let list = || self.values.iter().cloned().collect::<Vec<_>>().join(",");
        match self.op {
            Operator::Equals => write!(f, "{}={first}", self.key),
            Operator::NotEquals => write!(f, "{}!={first}", self.key),
            Operator::In => write!(f, "{} in ({})", self.key, list()),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, list()),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// A label selector: requirements that must all hold.
///
/// Semantics follow Kubernetes: the empty selector (`""` or `{}`) matches
/// everything ([`LabelSelector::is_empty`]); a null or absent
/// `metav1.LabelSelector` matches nothing ([`LabelSelector::nothing`], which
/// [`LabelSelector::from_json`] returns for `null`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// The selector that matches no object (a null `metav1.LabelSelector`).
    pub fn nothing() -> LabelSelector {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Builds a selector from requirements (sorted by key, as Kubernetes does).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> LabelSelector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements,
            nothing: false,
        }
    }

    /// Parses the string syntax; the empty string selects everything.
    pub fn parse(s: &str) -> Result<LabelSelector> {
        super::parse::parse(s).map(LabelSelector::from_requirements)
    }

    /// Converts a `metav1.LabelSelector` object; `null` gives [`LabelSelector::nothing`].
    pub fn from_json(sel: &Value) -> Result<LabelSelector> {
        let obj = match sel {
            Value::Null => return Ok(LabelSelector::nothing()),
            Value::Object(o) => o,
            _ => return Err(SelectorError::Malformed("must be an object".into())),
        };
        let mut reqs = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let v = v.as_str().ok_or_else(|| {
                        SelectorError::Malformed(format!("matchLabels[{k:?}] must be a string"))
                    })?;
                    reqs.push(Requirement::new(k, Operator::Equals, vec![v.to_string()])?);
                }
            }
            Some(_) => {
                return Err(SelectorError::Malformed(
                    "matchLabels must be an object".into(),
                ))
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, e) in exprs.iter().enumerate() {
                    reqs.push(expression(i, e)?);
                }
            }
            Some(_) => {
                return Err(SelectorError::Malformed(
                    "matchExpressions must be a list".into(),
                ))
            }
        }
        Ok(LabelSelector::from_requirements(reqs))
    }

    /// True when the selector matches everything (no requirements).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty() && !self.nothing
    }

    /// True for the selector that matches nothing.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether a label map (`metadata.labels`) satisfies every requirement.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether an object's `/metadata/labels` match; missing labels are empty.
    pub fn matches_object(&self, obj: &Value) -> bool {
        let empty = Map::new();
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        self.matches(labels.unwrap_or(&empty))
    }
}

/// Canonical form: requirements sorted by key, `=` for equality. The
/// `nothing` selector prints as `""` too (as in Kubernetes); it does not round-trip.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn expression(i: usize, e: &Value) -> Result<Requirement> {
    let malformed = |what: &str| SelectorError::Malformed(format!("matchExpressions[{i}]: {what}"));
    let key = e
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("key must be a string"))?;
    let operator = e
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let op = match operator {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        _ => {
            return Err(SelectorError::UnknownOperator {
                key: key.to_string(),
                operator: operator.to_string(),
            })
        }
    };
    let values = match e.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vs)) => vs
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| malformed("values must be strings"))
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(malformed("values must be a list")),
    };
    Requirement::new(key, op, values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn parse_and_match_every_operator() {
        let l = labels(json!({"app": "web", "tier": "front", "empty": ""}));
        // (selector, canonical form, matches `l`)
        let cases = [
            ("", "", true),
            ("  ", "", true),
            ("app=web", "app=web", true),
            ("app==web", "app=web", true),
            ("app = web", "app=web", true),
            ("app=db", "app=db", false),
            ("app!=db", "app!=db", true),
            ("app!=web", "app!=web", false),
            ("missing!=x", "missing!=x", true),
            ("app in (web,db)", "app in (db,web)", true),
            ("app in(db)", "app in (db)", false),
            ("missing in (a)", "missing in (a)", false),
            ("app notin (db, cache)", "app notin (cache,db)", true),
            ("app notin (web)", "app notin (web)", false),
            ("missing notin (a)", "missing notin (a)", true),
            ("app", "app", true),
            ("missing", "missing", false),
            ("!missing", "!missing", true),
            ("! app", "!app", false),
            ("empty=", "empty=", true),
            ("empty in (a,)", "empty in (,a)", true),
            ("tier=front,app=web", "app=web,tier=front", true),
            ("app=web, tier!=front", "app=web,tier!=front", false),
            ("in=in", "in=in", false),
            ("example.com/role=x", "example.com/role=x", false),
        ];
        for (input, canonical, want) in cases {
            let s = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(s.to_string(), canonical, "{input:?}");
            assert_eq!(s.matches(&l), want, "{input:?}");
            assert_eq!(
                LabelSelector::parse(canonical).unwrap(),
                s,
                "{input:?} round trip"
            );
        }
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let long = "a".repeat(64);
        let cases = [
            ("a=b,", "unable to parse selector \"a=b,\": found end of string, expected: '!' or identifier"),
            ("a=b c", "found 'c', expected: ',' or end of string"),
            ("a in b", "found 'b', expected: '(' after 'in' or 'notin'"),
            ("a in ()", "key \"a\": for 'in', 'notin' operators, values set can't be empty"),
            ("a in (b", "found end of string, expected: ',', ')' or identifier"),
            ("a (b)", "found '(', expected: '=', '==', '!=', 'in', 'notin'"),
            ("!", "found end of string, expected: identifier after '!'"),
            ("=a", "found '=', expected: '!' or identifier"),
            ("-a=b", "invalid label key \"-a\": name part must consist of alphanumeric"),
            ("a/=b", "invalid label key \"a/\": name part must be non-empty"),
            ("/a=b", "invalid label key \"/a\": prefix part must be non-empty"),
            ("Ex.com/a=b", "invalid label key \"Ex.com/a\": prefix part"),
            (&format!("{long}=b"), "name part must be no more than 63 characters"),
            (&format!("a={long}"), "invalid label value"),
            ("a=b_", "invalid label value \"b_\": at key \"a\": a valid label must be an empty string"),
            ("a in (x,-y)", "invalid label value \"-y\""),
        ];
        for (input, want) in cases {
            let err = LabelSelector::parse(input).expect_err(input).to_string();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }

    #[test]
    fn from_json_match_labels_and_expressions() {
        let sel = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "back"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "team", "operator": "Exists"},
                {"key": "canary", "operator": "DoesNotExist", "values": []},
            ]
        });
        let s = LabelSelector::from_json(&sel).unwrap();
        assert_eq!(
            s.to_string(),
            "app=web,!canary,env notin (prod),team,tier in (back,front)"
        );
        let cases = [
            (json!({"app": "web", "tier": "front", "team": "a"}), true),
            (
                json!({"app": "web", "tier": "front", "team": "a", "env": "prod"}),
                false,
            ),
            (
                json!({"app": "web", "tier": "front", "team": "a", "canary": "1"}),
                false,
            ),
            (json!({"app": "web", "tier": "front"}), false),
            (json!({"app": "db", "tier": "front", "team": "a"}), false),
        ];
        for (l, want) in cases {
            assert_eq!(s.matches(&labels(l.clone())), want, "{l}");
        }
    }

    #[test]
    fn empty_and_null_selectors() {
        let obj = json!({"metadata": {"labels": {"a": "b"}}});
        let bare = json!({"metadata": {}});
        let every = LabelSelector::from_json(&json!({})).unwrap();
        assert_eq!(
            "".parse::<LabelSelector>().unwrap(),
            LabelSelector::everything()
        );
        assert!(every.is_empty() && every.matches_object(&obj) && every.matches_object(&bare));
        let none = LabelSelector::from_json(&Value::Null).unwrap();
        assert!(!none.is_empty() && none.is_nothing());
        assert!(!none.matches_object(&obj) && !none.matches_object(&bare));
        let s = LabelSelector::parse("a=b").unwrap();
        assert!(s.matches_object(&obj) && !s.matches_object(&bare));
        assert!(LabelSelector::parse("!a").unwrap().matches_object(&bare));
    }

    #[test]
    fn from_json_errors() {
        let cases = [
            (json!("a=b"), "invalid label selector: must be an object"),
            (
                json!({"matchLabels": ["a"]}),
                "matchLabels must be an object",
            ),
            (
                json!({"matchLabels": {"a": 1}}),
                "matchLabels[\"a\"] must be a string",
            ),
            (
                json!({"matchLabels": {"a": "a b"}}),
                "unable to parse requirement: invalid label value \"a b\": at key \"a\"",
            ),
            (
                json!({"matchExpressions": {}}),
                "matchExpressions must be a list",
            ),
            (
                json!({"matchExpressions": [{"operator": "In"}]}),
                "matchExpressions[0]: key must be a string",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
                "\"Gt\" is not a valid label selector operator for key \"a\"",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                "values set can't be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}),
                "values set can't be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                "values set must be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}),
                "values must be strings",
            ),
        ];
        for (sel, want) in cases {
            let err = LabelSelector::from_json(&sel)
                .expect_err(&sel.to_string())
                .to_string();
            assert!(err.contains(want), "{sel}: {err}");
        }
    }
}
