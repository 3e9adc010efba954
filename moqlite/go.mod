module github.com/moqstats/moqstats/moqlite

go 1.26.0

require github.com/moqstats/moqstats v0.0.0

replace github.com/moqstats/moqstats => ../
