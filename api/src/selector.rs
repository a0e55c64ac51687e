//! Selectors (placeholder until the patch branch lands).
use serde_json::Value;

/// Label selector.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector(Vec<(String, String)>);
/// Field selector.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, String)>);
/// Error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

fn pairs(s: &str) -> Result<Vec<(String, String)>, SelectorError> {
    s.split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| {
            t.split_once('=')
                .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                .ok_or_else(|| SelectorError(t.into()))
        })
        .collect()
}

impl LabelSelector {
    /// Parse.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        pairs(s).map(LabelSelector)
    }
    /// From JSON.
    pub fn from_json(v: &Value) -> Result<Self, SelectorError> {
        Ok(LabelSelector(
            v["matchLabels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        ))
    }
    /// Matches.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.0.iter().all(|(k, v)| {
            obj.pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
                == Some(v)
        })
    }
}
impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "{}", v.join(","))
    }
}
impl FieldSelector {
    /// Parse.
    pub fn parse(s: &str, _supported: &[&str]) -> Result<Self, SelectorError> {
        pairs(s).map(FieldSelector)
    }
    /// Matches.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(k, v)| {
            obj.pointer(&format!("/{}", k.replace('.', "/")))
                .and_then(Value::as_str)
                .unwrap_or_default()
                == v
        })
    }
}
