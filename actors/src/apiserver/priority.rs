//! Pod priority, as Kubernetes' `Priority` admission plugin: a pod's
//! `priorityClassName` (else the global default class) gives its
//! `spec.priority` and `spec.preemptionPolicy`; only one PriorityClass may be
//! the global default. The decisions are pure; the reads are the server's.

use super::{ApiServer, Outcome};
use ferry_api::object::Status;
use ferry_api::proto::Consistency;
use ferry_api::resources::{self, Resource};
use serde_json::{json, Value};

/// What a pod takes from its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// The class's name.
    pub name: String,
    /// `value`.
    pub value: i64,
    /// `preemptionPolicy`.
    pub policy: String,
}

impl Class {
    fn of(pc: &Value) -> Class {
        Class {
            name: pc["metadata"]["name"].as_str().unwrap_or_default().into(),
            value: pc["value"].as_i64().unwrap_or(0),
            policy: pc["preemptionPolicy"]
                .as_str()
                .unwrap_or("PreemptLowerPriority")
                .into(),
        }
    }
}

/// The global default among `classes`: the lowest value of those marked
/// default, as Kubernetes picks when several are.
pub fn global_default(classes: &[Value]) -> Option<Class> {
    classes
        .iter()
        .filter(|pc| pc["globalDefault"] == json!(true))
        .map(Class::of)
        .min_by_key(|c| c.value)
}

/// Sets `pod`'s priority from `class` (None: no class named and no global
/// default: priority 0). A priority or policy the pod already gives must
/// agree; the reason otherwise is Kubernetes' wording.
pub fn set(pod: &mut Value, class: Option<&Class>) -> Result<(), String> {
    let (value, policy) = class.map_or((0, "PreemptLowerPriority"), |c| {
        (c.value, c.policy.as_str())
    });
    let spec = &mut pod["spec"];
    if let Some(given) = spec.get("priority").and_then(Value::as_i64) {
        if given != value {
            return Err(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; \
                 priority admission controller computed {value} from the given PriorityClass name"
            ));
        }
    }
    if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str) {
        if given != policy {
            return Err(format!(
                "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; \
                 priority admission controller computed {policy} from the given PriorityClass name"
            ));
        }
    }
    if let Some(c) = class {
        spec["priorityClassName"] = json!(c.name);
    }
    spec["priority"] = json!(value);
    spec["preemptionPolicy"] = json!(policy);
    Ok(())
}

fn classes() -> &'static Resource {
    resources::by_cli_name("priorityclasses").expect("priorityclasses served")
}

impl ApiServer {
    /// Reads one PriorityClass: the local copy, else a linearizable read (a
    /// class created a moment ago through another master).
    async fn priority_class(&self, name: &str) -> Outcome<Option<Value>> {
        let res = classes();
        if let Some((pc, _)) = self
            .read_object(res, None, name, Consistency::Local)
            .await?
        {
            return Ok(Some(pc));
        }
        Ok(self
            .read_object(res, None, name, Consistency::Linearizable)
            .await?
            .map(|(pc, _)| pc))
    }

    /// Every PriorityClass this master has.
    async fn priority_classes(&self) -> Outcome<Vec<Value>> {
        self.local_objects(classes(), None).await
    }

    /// A new pod's priority from its class (Forbidden when the class does not
    /// exist or the pod's own values disagree).
    pub(super) async fn admit_pod_priority(&self, pod: &mut Value) -> Outcome<()> {
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let forbidden =
            |why: String| Status::forbidden(format!("pods {name:?} is forbidden: {why}"));
        let wanted = pod["spec"]["priorityClassName"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        let class = match wanted {
            Some(c) => match self.priority_class(&c).await? {
                Some(pc) => Some(Class::of(&pc)),
                None => {
                    return Err(
                        forbidden(format!("no PriorityClass with name {c} was found")).into(),
                    )
                }
            },
            None => global_default(&self.priority_classes().await?),
        };
        set(pod, class.as_ref()).map_err(|why| forbidden(why).into())
    }

    /// A PriorityClass marked `globalDefault` may not join another default.
    pub(super) async fn admit_priority_class(&self, pc: &Value) -> Outcome<()> {
        if pc["globalDefault"] != json!(true) {
            return Ok(());
        }
        let name = pc["metadata"]["name"].as_str().unwrap_or_default();
        let other =
            self.priority_classes().await?.into_iter().find(|o| {
                o["globalDefault"] == json!(true) && o["metadata"]["name"] != json!(name)
            });
        match other {
            Some(o) => Err(Status::forbidden(format!(
                "priorityclasses.scheduling.k8s.io {name:?} is forbidden: PriorityClass {} is \
                 already marked as default. Only one default can exist",
                o["metadata"]["name"].as_str().unwrap_or_default()
            ))
            .into()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, value: i64, policy: &str) -> Class {
        Class {
            name: name.into(),
            value,
            policy: policy.into(),
        }
    }

    #[test]
    fn pods_take_their_class_priority() {
        let high = class("high", 1000, "PreemptLowerPriority");
        type Case = (
            &'static str,
            Value,
            Option<Class>,
            Result<Value, &'static str>,
        );
        let cases: Vec<Case> = vec![
            ("no class: priority 0", json!({}), None,
             Ok(json!({"priority": 0, "preemptionPolicy": "PreemptLowerPriority"}))),
            ("a class", json!({"priorityClassName": "high"}), Some(high.clone()),
             Ok(json!({"priorityClassName": "high", "priority": 1000, "preemptionPolicy": "PreemptLowerPriority"}))),
            // The global default fills the class name in too.
            ("the default", json!({}), Some(class("def", 7, "Never")),
             Ok(json!({"priorityClassName": "def", "priority": 7, "preemptionPolicy": "Never"}))),
            ("a matching priority is kept", json!({"priorityClassName": "high", "priority": 1000}), Some(high.clone()),
             Ok(json!({"priorityClassName": "high", "priority": 1000, "preemptionPolicy": "PreemptLowerPriority"}))),
            ("another priority", json!({"priorityClassName": "high", "priority": 5}), Some(high.clone()),
             Err("the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name")),
            ("another policy", json!({"preemptionPolicy": "Never"}), None,
             Err("the string value of PreemptionPolicy (Never) must not be provided in pod spec; priority admission controller computed PreemptLowerPriority from the given PriorityClass name")),
        ];
        for (name, spec, c, want) in cases {
            let mut pod = json!({"metadata": {"name": "p"}, "spec": spec});
            match (set(&mut pod, c.as_ref()), want) {
                (Ok(()), Ok(w)) => assert_eq!(pod["spec"], w, "{name}"),
                (Err(e), Err(w)) => assert_eq!(e, w, "{name}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_lowest_default_class_wins() {
        let pcs = vec![
            json!({"metadata": {"name": "a"}, "value": 50, "globalDefault": true}),
            json!({"metadata": {"name": "b"}, "value": 10, "globalDefault": true, "preemptionPolicy": "Never"}),
            json!({"metadata": {"name": "c"}, "value": 1}),
        ];
        assert_eq!(global_default(&pcs), Some(class("b", 10, "Never")));
        assert_eq!(global_default(&pcs[2..]), None);
    }
}
