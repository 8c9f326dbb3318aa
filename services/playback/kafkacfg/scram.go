package kafkacfg

import (
	"crypto/sha256"
	"crypto/sha512"

	"github.com/xdg-go/scram"
)

// scramClient adapts xdg-go/scram to sarama.SCRAMClient; sarama leaves the
// SCRAM implementation to the application.
type scramClient struct {
	gen  scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func newSCRAM(gen scram.HashGeneratorFcn) *scramClient { return &scramClient{gen: gen} }

var (
	scramSHA256 scram.HashGeneratorFcn = sha256.New
	scramSHA512 scram.HashGeneratorFcn = sha512.New
)

func (s *scramClient) Begin(user, password, authzID string) error {
	c, err := s.gen.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	s.conv = c.NewConversation()
	return nil
}

func (s *scramClient) Step(challenge string) (string, error) { return s.conv.Step(challenge) }

func (s *scramClient) Done() bool { return s.conv.Done() }
