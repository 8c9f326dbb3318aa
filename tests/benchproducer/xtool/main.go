// Temporary exploration tool; deleted before hand-off.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/tests/benchproducer"
)

func main() {
	addr := os.Args[2]
	switch os.Args[1] {
	case "topic":
		cfg := sarama.NewConfig()
		a, err := sarama.NewClusterAdmin([]string{addr}, cfg)
		if err != nil {
			panic(err)
		}
		if err := a.CreateTopic(os.Args[3], &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
			panic(err)
		}
		a.Close()
	case "hw":
		t, err := benchproducer.OpenTopic(addr, os.Args[3])
		if err != nil {
			panic(err)
		}
		n, _ := t.HighWater()
		fmt.Println(n)
	case "rate":
		t, err := benchproducer.OpenTopic(addr, os.Args[3])
		if err != nil {
			panic(err)
		}
		sec, _ := strconv.Atoi(os.Args[4])
		h0, _ := t.HighWater()
		s := time.Now()
		time.Sleep(time.Duration(sec) * time.Second)
		h1, _ := t.HighWater()
		fmt.Printf("%.0f events/s\n", float64(h1-h0)/time.Since(s).Seconds())
	}
}
