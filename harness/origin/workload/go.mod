// The pinned workload of the hermetic origin and of every download test: the
// seed's real project (gin v1.9.1 and its whole graph) plus modules that exercise
// the GOPROXY protocol's edge cases. Changing this file refills the origin.
module example.com/gomirror/workload

go 1.20

require (
	github.com/gin-gonic/gin v1.9.1
	golang.org/x/text v0.10.0
	// upper-case letters in the path: served as github.com/!burnt!sushi/toml
	github.com/BurntSushi/toml v1.3.2
	// a +incompatible version (v2+ tag without a /vN module path)
	github.com/dgrijalva/jwt-go v3.2.0+incompatible
	// a pseudo-version
	github.com/chenzhuoyu/base64x v0.0.0-20221115062448-fe3a3abad311
	// a major-version /vN path
	github.com/go-playground/validator/v10 v10.14.0
)
