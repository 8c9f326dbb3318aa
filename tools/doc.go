// Package tools is the home of Playpulse's development commands and the
// packages behind them: what `make run` starts (cmd/devstack), what `make
// generate` runs (cmd/docgen, package docgen), and what builds the images
// for the test bed (cmd/imagebuild, package image). None of it ships in an
// image; the services never import it.
package tools
