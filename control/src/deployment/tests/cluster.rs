//! An in-memory cluster for the step-by-step tests: applies the Deployment
//! core's actions, runs the ReplicaSet core until it settles, and lets a test
//! mark pods Ready, terminate them, and move the clock.

use super::*;
use crate::replicaset;

/// The objects of one Deployment, and a clock in seconds.
pub(super) struct Cluster {
    pub d: Deployment,
    pub rss: Vec<ReplicaSet>,
    pub pods: Vec<Pod>,
    pub clock: i64,
    /// Deleted pods linger as terminating until [`Cluster::reap`].
    pub graceful: bool,
    seq: u32,
}

impl Cluster {
    pub fn new(d: Deployment) -> Self {
        Cluster {
            d,
            rss: Vec::new(),
            pods: Vec::new(),
            clock: T0,
            graceful: false,
            seq: 0,
        }
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::from_second(self.clock).unwrap()
    }

    fn next(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    /// One Deployment pass; its actions applied and returned.
    pub fn pass(&mut self) -> Vec<Action> {
        let rss: Vec<Arc<ReplicaSet>> = self.rss.iter().cloned().map(Arc::new).collect();
        let pods: Vec<Arc<Pod>> = self.pods.iter().cloned().map(Arc::new).collect();
        let actions = reconcile(&self.d, &rss, &pods, self.now());
        for a in actions.clone() {
            self.apply(a);
        }
        actions
    }

    fn apply(&mut self, a: Action) {
        match a {
            Action::CreateReplicaSet(mut rs) => {
                assert!(
                    !self.rss.iter().any(|r| r.metadata.name == rs.metadata.name),
                    "name taken"
                );
                let n = self.next();
                rs.metadata.uid = Some(format!("rs-{n}"));
                rs.metadata.resource_version = Some(n.to_string());
                rs.metadata.generation = Some(1);
                rs.metadata.creation_timestamp = Some(meta::time(self.now()));
                self.rss.push(rs);
            }
            Action::UpdateReplicaSet {
                name,
                resource_version,
                replicas,
                annotations,
            } => {
                let n = self.next();
                let rs = self
                    .rss
                    .iter_mut()
                    .find(|r| r.metadata.name.as_ref() == Some(&name))
                    .unwrap();
                assert_eq!(
                    rs.metadata.resource_version.as_ref(),
                    Some(&resource_version),
                    "precondition"
                );
                rs.spec.as_mut().unwrap().replicas = Some(replicas);
                rs.metadata.annotations = Some(annotations);
                rs.metadata.resource_version = Some(n.to_string());
                rs.metadata.generation = Some(rs.metadata.generation.unwrap_or(0) + 1);
            }
            Action::DeleteReplicaSet(name, uid) => {
                self.rss.retain(|r| {
                    r.metadata.name.as_ref() != Some(&name) || r.metadata.uid.as_ref() != Some(&uid)
                });
                self.pods
                    .retain(|p| meta::controller_of(&p.metadata).map(|o| &o.uid) != Some(&uid));
            }
            Action::SetRevision(rev) => {
                self.d
                    .metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(REVISION.into(), rev);
            }
            Action::Status(s) => self.d.status = Some(s),
        }
    }

    fn pods_of(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        self.pods
            .iter()
            .filter(|p| {
                meta::controller_of(&p.metadata).map(|o| &o.uid) == rs.metadata.uid.as_ref()
            })
            .cloned()
            .map(Arc::new)
            .collect()
    }

    /// ReplicaSet passes until none has anything to do.
    pub fn settle(&mut self) {
        for _ in 0..20 {
            let mut busy = false;
            for i in 0..self.rss.len() {
                busy |= self.rs_pass_at(i);
            }
            if !busy {
                return;
            }
        }
        panic!("the ReplicaSets do not settle");
    }

    /// One pass of the ReplicaSet running `image` alone (the others' passes
    /// not yet run): its creates and deletes applied, and the status it
    /// computed, from the pods as they were before them, stored.
    pub fn rs_pass(&mut self, image: &str) {
        let i = self
            .rss
            .iter()
            .position(|r| std::ptr::eq(r, self.rs_of(image)))
            .unwrap();
        self.rs_pass_at(i);
    }

    /// One pass of ReplicaSet `i`; true when it wrote anything.
    pub fn rs_pass_at(&mut self, i: usize) -> bool {
        let dec = replicaset::reconcile(&self.rss[i], &self.pods_of(&self.rss[i]), self.now());
        let busy = dec.status.is_some() || !dec.create.is_empty() || !dec.delete.is_empty();
        if let Some(s) = dec.status {
            self.rss[i].status = Some(s);
        }
        for mut p in dec.create {
            let n = self.next();
            let name = format!("{}{n}", p.metadata.generate_name.clone().unwrap());
            p.metadata.name = Some(name);
            p.metadata.uid = Some(format!("pod-{n}"));
            p.metadata.creation_timestamp = Some(meta::time(self.now()));
            p.spec.get_or_insert_default().node_name = Some("n1".into());
            p.status = Some(serde_json::from_value(json!({"phase": "Pending"})).unwrap());
            self.pods.push(p);
        }
        for (_, uid) in dec.delete {
            self.delete_pod(&uid);
        }
        busy
    }

    fn delete_pod(&mut self, uid: &str) {
        if self.graceful {
            let t = meta::time(self.now());
            for p in self
                .pods
                .iter_mut()
                .filter(|p| p.metadata.uid.as_deref() == Some(uid))
            {
                p.metadata.deletion_timestamp = Some(t.clone());
            }
        } else {
            self.pods.retain(|p| p.metadata.uid.as_deref() != Some(uid));
        }
    }

    /// Terminating pods finish.
    pub fn reap(&mut self) {
        self.pods
            .retain(|p| p.metadata.deletion_timestamp.is_none());
    }

    /// Marks the oldest not-Ready active pod Ready; false when there is none.
    pub fn ready_one(&mut self) -> bool {
        let t = self.now().to_string();
        let Some(p) = self
            .pods
            .iter_mut()
            .find(|p| meta::pod_active(p) && !meta::pod_ready(p))
        else {
            return false;
        };
        p.status = Some(
            serde_json::from_value(json!({"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": t}
            ]}))
            .unwrap(),
        );
        true
    }

    /// Passes, settling and readying every pod, until a pass writes nothing.
    pub fn converge(&mut self) {
        for _ in 0..100 {
            self.settle();
            while self.ready_one() {}
            self.settle();
            self.reap();
            self.settle();
            // Idle only counts once everything the last writes caused is in.
            if self.pass().is_empty() {
                return;
            }
            self.clock += 1;
        }
        panic!("the Deployment does not converge");
    }

    /// Active pods, and of them the Ready ones.
    pub fn counts(&self) -> (usize, usize) {
        let active: Vec<&Pod> = self.pods.iter().filter(|p| meta::pod_active(p)).collect();
        (
            active.len(),
            active.iter().filter(|p| meta::pod_ready(p)).count(),
        )
    }

    /// The ReplicaSet running `image`.
    pub fn rs_of(&self, image: &str) -> &ReplicaSet {
        self.rss
            .iter()
            .find(|r| {
                let t = r.spec.as_ref().unwrap().template.as_ref().unwrap();
                t.spec.as_ref().unwrap().containers[0].image.as_deref() == Some(image)
            })
            .unwrap()
    }

    /// Sets the template's image (a new generation, as the API would).
    pub fn set_image(&mut self, image: &str) {
        let s = self.d.spec.as_mut().unwrap();
        s.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        self.d.metadata.generation = Some(self.d.metadata.generation.unwrap_or(0) + 1);
    }

    /// Edits the spec (a new generation).
    pub fn edit(&mut self, f: impl FnOnce(&mut DeploymentSpec)) {
        f(self.d.spec.as_mut().unwrap());
        self.d.metadata.generation = Some(self.d.metadata.generation.unwrap_or(0) + 1);
    }

    /// The Progressing condition's (status, reason, message).
    pub fn progressing(&self) -> (String, String, String) {
        let s = self.d.status.as_ref().unwrap();
        let c = s
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Progressing")
            .unwrap();
        (
            c.status.clone(),
            c.reason.clone().unwrap(),
            c.message.clone().unwrap(),
        )
    }
}
