//! Storage admission, as Kubernetes' `DefaultStorageClass` plugin: a new
//! claim without `storageClassName` gets the default class's name (the newest
//! class annotated `storageclass.kubernetes.io/is-default-class: "true"`);
//! a claim that names `""` asks for no class and keeps it.

use super::{ApiServer, Outcome};
use ferry_api::resources::{self, Resource};
use serde_json::{json, Value};

/// The annotation marking the default StorageClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

fn classes() -> &'static Resource {
    resources::by_cli_name("storageclasses").expect("storageclasses served")
}

/// The default class among `classes`: the newest marked default (by
/// creation time, then name, as Kubernetes picks), if any.
pub fn default_class(classes: &[Value]) -> Option<&str> {
    classes
        .iter()
        .filter(|c| {
            c.pointer("/metadata/annotations")
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .and_then(Value::as_str)
                == Some("true")
        })
        .max_by(|a, b| {
            let key = |c: &Value| {
                (
                    c.pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    c.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                )
            };
            key(a).cmp(&key(b))
        })
        .and_then(|c| c.pointer("/metadata/name").and_then(Value::as_str))
}

impl ApiServer {
    /// Gives a new claim without a class the default class, when there is one.
    pub(super) async fn admit_claim_class(&self, claim: &mut Value) -> Outcome<()> {
        if claim
            .pointer("/spec/storageClassName")
            .is_some_and(|c| !c.is_null())
        {
            return Ok(());
        }
        let classes = self.local_objects(classes(), None).await?;
        if let Some(name) = default_class(&classes) {
            claim["spec"]["storageClassName"] = json!(name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_class_marked_default_is_the_default() {
        let class = |name: &str, created: &str, default: Option<&str>| {
            let mut c = json!({"metadata": {"name": name, "creationTimestamp": created}});
            if let Some(d) = default {
                c["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: d});
            }
            c
        };
        assert_eq!(default_class(&[]), None);
        let classes = [
            class("old", "2026-01-01T00:00:00Z", Some("true")),
            class("new", "2026-02-01T00:00:00Z", Some("true")),
            class("newest-not-default", "2026-03-01T00:00:00Z", Some("false")),
            class("plain", "2026-04-01T00:00:00Z", None),
        ];
        assert_eq!(default_class(&classes), Some("new"));
        assert_eq!(default_class(&classes[2..]), None);
    }
}
