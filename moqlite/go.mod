module github.com/moqstats/moqstats/moqlite

go 1.26.0

require github.com/coder/websocket v1.8.15

replace github.com/moqstats/moqstats => ../
