// The pod sandbox ("pause") of the test-bed cluster (hack/cluster.sh). Not
// part of any go.work: built with GOWORK=off; no dependencies.
module playpulse.dev/hack/cluster/pause

go 1.26.0
