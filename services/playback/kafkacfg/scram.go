package kafkacfg

import (
	"crypto/sha256"
	"crypto/sha512"

	"github.com/xdg-go/scram"
)

// scramClient adapts xdg-go/scram to sarama.SCRAMClient; sarama leaves the
// SCRAM implementation to the application. sarama creates one per
// connection and hands it the password it was configured with; the client
// uses password() instead, the password file as it is now, so a rotated
// password reaches every new connection.
type scramClient struct {
	gen      scram.HashGeneratorFcn
	password func() string
	conv     *scram.ClientConversation
}

func newSCRAM(gen scram.HashGeneratorFcn, password func() string) *scramClient {
	return &scramClient{gen: gen, password: password}
}

var (
	scramSHA256 scram.HashGeneratorFcn = sha256.New
	scramSHA512 scram.HashGeneratorFcn = sha512.New
)

func (s *scramClient) Begin(user, _, authzID string) error {
	c, err := s.gen.NewClient(user, s.password(), authzID)
	if err != nil {
		return err
	}
	s.conv = c.NewConversation()
	return nil
}

func (s *scramClient) Step(challenge string) (string, error) { return s.conv.Step(challenge) }

func (s *scramClient) Done() bool { return s.conv.Done() }
