// Package smoke holds a test that starts controller-runtime's envtest control
// plane from the binaries hack/envtest.sh builds, and drives it through
// client-go and the built kubectl.
package smoke
