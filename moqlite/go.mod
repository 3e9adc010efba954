module github.com/moqstats/moqstats/moqlite

go 1.26.0

require github.com/moqstats/moqstats v0.0.0

require (
	github.com/klauspost/compress v1.20.4 // indirect
	github.com/puzpuzpuz/xsync/v3 v3.5.1 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/moqstats/moqstats => ../
