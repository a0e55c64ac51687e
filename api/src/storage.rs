//! Names shared by the storage controller (on the masters) and the node
//! agent: the built-in `local-path` provisioner, as k3s's
//! local-path-provisioner, gives each claim a directory on the node its first
//! pod is scheduled to.

/// The default StorageClass's name.
pub const LOCAL_PATH_CLASS: &str = "local-path";
/// Its provisioner.
pub const LOCAL_PATH_PROVISIONER: &str = "ferry.io/local-path";
/// The annotation a node puts on its Node: the directory its local-path
/// volumes live under.
pub const NODE_STORAGE_DIR: &str = "ferry.io/local-path-dir";
/// The directory used when a Node does not say (as k3s's default).
pub const DEFAULT_STORAGE_DIR: &str = "/var/lib/ferry/storage";
/// The annotation the scheduler puts on a `WaitForFirstConsumer` claim: the
/// node its first pod goes to, where the volume is to be provisioned.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The annotation naming the provisioner that made a PersistentVolume.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

/// The directory of volume `pv` (for claim `namespace/claim`) under a node's
/// storage directory `base`.
pub fn volume_dir(base: &str, pv: &str, namespace: &str, claim: &str) -> String {
    format!("{}/{pv}_{namespace}_{claim}", base.trim_end_matches('/'))
}

/// The finalizer that keeps a claim while a pod uses it.
pub const CLAIM_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The finalizer that keeps a volume while a claim is bound to it.
pub const VOLUME_PROTECTION: &str = "kubernetes.io/pv-protection";
