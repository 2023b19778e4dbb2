module perfagent/pproftarget

go 1.19
