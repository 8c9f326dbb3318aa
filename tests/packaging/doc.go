// Package packaging tests what ships Playpulse to Kubernetes, without a
// Docker engine or a cluster:
//
//   - the Helm chart (charts/playpulse): helm lint --strict, helm template
//     with default values, the dev values and every optional part on, the
//     hardening every pod must have, the values schema refusing wrong types
//     and unknown keys;
//   - the rendered objects, the k8s/ manifests and the samples, applied with
//     strict field validation to a real kube-apiserver and etcd (envtest,
//     from hack/envtest.sh) with the chart's CRD and test copies of the
//     Strimzi and ServiceMonitor CRDs; helm install, upgrade and uninstall
//     against the same API server;
//   - the contract between the chart and the services: every environment
//     variable a pod gets is one its service reads (from the config structs,
//     through envconf.Vars), and every variable a service requires is set;
//   - the ClusterRole the chart renders has controller-gen's RBAC rules
//     (that the chart's copies are current is tests/generated's concern);
//   - the Tiltfile, evaluated by a Starlark interpreter with stand-ins for
//     the built-ins of Tilt v0.34.0 (tiltVersion): every path, chart and
//     Dockerfile it names exists and every image it builds is used by what
//     it deploys;
//   - the Dockerfiles, read with BuildKit's parser (tools/image): statically
//     (pinned bases, non-root user, paths that exist, OCI labels) and by
//     building the release images without Docker (tools/image replays the
//     build stages on the host).
//
// helm is built from helm.sh/helm/v3 by hack/helm.sh and the control plane
// by hack/envtest.sh; both cache their output, so only the first run pays.
package packaging
