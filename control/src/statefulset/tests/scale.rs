//! Scaling down: condemned pods go from the highest ordinal.

use super::*;

#[test]
fn scale_down_goes_from_the_top_one_at_a_time() {
    let set = sts(1, json!({}));
    let mut pods = ready_pods(3);
    let d = reconcile(&set, &pods, now());
    assert_eq!(deleted(&d), ["web-2"]);
    assert_eq!(d.delete[0].1, "uid-web-2");
    assert!(d.create.is_empty());
    // While web-2 terminates, web-1 waits.
    pods[2] = pod("web-2", &old(), Some(60), terminating_patch());
    assert!(reconcile(&set, &pods, now()).delete.is_empty());
    pods.pop();
    assert_eq!(deleted(&reconcile(&set, &pods, now())), ["web-1"]);
    // Parallel removes them all at once.
    let parallel = sts(1, json!({"spec": {"podManagementPolicy": "Parallel"}}));
    assert_eq!(
        deleted(&reconcile(&parallel, &ready_pods(3), now())),
        ["web-2", "web-1"]
    );
}

#[test]
fn ordered_scale_down_waits_for_the_pods_that_stay() {
    let r = old();
    // (why, pods, the pod deleted)
    let cases: Vec<(&str, Pods, Option<&str>)> = vec![
        (
            "a kept pod not ready",
            vec![
                pod("web-0", &r, None, json!({})),
                pod("web-1", &r, Some(60), json!({})),
            ],
            None,
        ),
        (
            "a kept pod terminating",
            vec![
                pod("web-0", &r, Some(60), terminating_patch()),
                pod("web-1", &r, Some(60), json!({})),
            ],
            None,
        ),
        (
            "the lowest unhealthy condemned pod may go",
            vec![
                pod("web-0", &r, Some(60), json!({})),
                pod("web-1", &r, None, json!({})),
            ],
            Some("web-1"),
        ),
        (
            "an unhealthy top pod waits for a lower unhealthy one",
            vec![
                pod("web-0", &r, Some(60), json!({})),
                pod("web-1", &r, None, json!({})),
                pod("web-2", &r, None, json!({})),
            ],
            None,
        ),
        (
            "a healthy top pod goes",
            vec![
                pod("web-0", &r, Some(60), json!({})),
                pod("web-1", &r, None, json!({})),
                pod("web-2", &r, Some(60), json!({})),
            ],
            Some("web-2"),
        ),
    ];
    for (why, pods, want) in cases {
        let d = reconcile(&sts(1, json!({})), &pods, now());
        assert_eq!(deleted(&d), want.into_iter().collect::<Vec<_>>(), "{why}");
        assert!(d.create.is_empty(), "{why}");
    }
}
