"""The official Kubernetes Python client against ferry's HTTPS API.

    client.py crud KUBECONFIG          create, list, patch, delete pods and deployments
    client.py watch KUBECONFIG LAST    watch ConfigMaps from a list's resourceVersion,
                                       resuming after a broken stream, until LAST is added
    client.py tty-size KUBECONFIG POD  attach to POD's terminal, type `stty size` and only
                                       then send the window size (91x27); print the size seen

Prints one line per step (`crud`) or per event (`watch`: `ADDED name rv`), so the
test asserts on what the client saw.
"""

import sys
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def crud(v1, apps):
    ns = "default"
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-pod", labels={"from": "python"}),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="c", image="busybox", command=["sleep", "3600"])]
        ),
    )
    created = v1.create_namespaced_pod(ns, pod)
    print("created", created.metadata.name, bool(created.metadata.uid), flush=True)
    listed = v1.list_namespaced_pod(ns, label_selector="from=python")
    print("listed", ",".join(p.metadata.name for p in listed.items), flush=True)
    patched = v1.patch_namespaced_pod("py-pod", ns, {"metadata": {"labels": {"patched": "yes"}}})
    print("patched", patched.metadata.labels.get("patched"), flush=True)
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="py-dep"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"app": "py"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "py"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
            ),
        ),
    )
    apps.create_namespaced_deployment(ns, dep)
    d = apps.patch_namespaced_deployment("py-dep", ns, {"spec": {"replicas": 2}})
    print("scaled", d.spec.replicas, flush=True)
    try:
        apps.create_namespaced_deployment(ns, dep)
        print("conflict missing", flush=True)
    except ApiException as e:
        print("conflict", e.status, flush=True)
    apps.delete_namespaced_deployment("py-dep", ns)
    v1.delete_namespaced_pod("py-pod", ns, grace_period_seconds=0)
    try:
        v1.read_namespaced_pod("py-pod", ns)
        print("still there", flush=True)
    except ApiException as e:
        print("gone", e.status, flush=True)


def watch_until(v1, last):
    ns = "default"
    rv = v1.list_namespaced_config_map(ns).metadata.resource_version
    print("listed", rv, flush=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        w = watch.Watch()
        try:
            for ev in w.stream(v1.list_namespaced_config_map, ns, resource_version=rv,
                               allow_watch_bookmarks=True, timeout_seconds=60):
                if ev["type"] == "BOOKMARK":
                    # The client hands bookmarks over undecoded.
                    rv = ev["raw_object"]["metadata"]["resourceVersion"]
                    continue
                obj = ev["object"]
                rv = obj.metadata.resource_version
                print(ev["type"], obj.metadata.name, rv, flush=True)
                if ev["type"] == "ADDED" and obj.metadata.name == last:
                    return
        except ApiException as e:
            if e.status == 410:
                print("expired", flush=True)
                rv = v1.list_namespaced_config_map(ns).metadata.resource_version
            else:
                print("resume after", e.status, flush=True)
                time.sleep(0.2)
        except Exception as e:  # a broken stream: the master died
            print("resume after", type(e).__name__, flush=True)
            time.sleep(0.2)
    sys.exit("timed out")


def tty_size(v1, pod):
    """Input first, the terminal's size 300 ms later: what a client that
    sends both at once may do (kubectl does, on separate streams)."""
    from kubernetes.stream import stream

    ws = stream(v1.connect_get_namespaced_pod_attach, pod, "default",
                stdin=True, stdout=True, stderr=False, tty=True,
                _preload_content=False)
    ws.write_stdin("stty size\n")
    time.sleep(0.3)
    ws.write_channel(4, '{"Width": 91, "Height": 27}')
    seen = ""
    deadline = time.time() + 20
    while time.time() < deadline and ws.is_open():
        ws.update(timeout=1)
        seen += ws.read_stdout() if ws.peek_stdout() else ""
        for line in seen.replace("\r", "").split("\n"):
            parts = line.split()
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                print("size", line.strip())
                ws.close()
                return
    sys.exit("no size in: %r (open: %s, error channel: %r)"
             % (seen, ws.is_open(), ws.read_channel(3)))


def main():
    mode, kubeconfig = sys.argv[1], sys.argv[2]
    config.load_kube_config(config_file=kubeconfig)
    v1 = client.CoreV1Api()
    if mode == "crud":
        crud(v1, client.AppsV1Api())
    elif mode == "tty-size":
        tty_size(v1, sys.argv[3])
    else:
        watch_until(v1, sys.argv[3])


main()
