//! Tests of the fake Kubernetes API server, driven with the real kube client over HTTPS.

mod support;

#[test]
fn starts() {
    let kube = support::fake_kube::FakeKube::start(Default::default()).expect("start");
    assert!(kube.kubeconfig().exists());
}
