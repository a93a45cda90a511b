package car

import (
	"strings"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
)

// credential builds the SDK credential from the environment at call time.
// A missing variable is a KindAuth error naming the variable (never a value).
// The session token is optional: long-lived keys have none.
func credential(action string, getenv func(string) string) (*common.Credential, error) {
	id := strings.TrimSpace(getenv(EnvSecretID))
	key := strings.TrimSpace(getenv(EnvSecretKey))
	token := strings.TrimSpace(getenv(EnvSessionToken))
	var missing []string
	if id == "" {
		missing = append(missing, EnvSecretID)
	}
	if key == "" {
		missing = append(missing, EnvSecretKey)
	}
	if len(missing) > 0 {
		return nil, &Error{
			Action:  action,
			Code:    "ClientError.MissingCredentials",
			Message: "environment variable(s) not set: " + strings.Join(missing, ", "),
			Kind:    KindAuth,
		}
	}
	return common.NewTokenCredential(id, key, token), nil
}
