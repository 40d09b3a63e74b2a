// The benchmark's larger graph (make bench-proxy only; no test reads it): a real
// service's dependencies, 112 modules and ~122 MB of zips. Changing this file
// refills .cache/origin-large/.
module example.com/gomirror/workload-large

go 1.22

require (
	github.com/hashicorp/vault/api v1.12.0
	github.com/prometheus/client_golang v1.19.0
	github.com/spf13/cobra v1.8.0
	github.com/spf13/viper v1.18.2
	go.uber.org/zap v1.27.0
	google.golang.org/grpc v1.62.1
)
