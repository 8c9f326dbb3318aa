package benchproducer

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
)

func BenchmarkExplore(b *testing.B) {
	broker := kafkatest.Start(b)
	bin := harness.FastBin(b)
	for _, c := range strings.Fields(os.Getenv("X_CODECS")) {
		saturate(b, broker, bin, c, "5ms")
	}
	for _, r := range strings.Fields(os.Getenv("X_RATES")) {
		f, _ := strconv.ParseFloat(r, 64)
		accuracy(b, broker, bin, f)
	}
}
