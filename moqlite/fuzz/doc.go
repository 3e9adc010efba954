// Package fuzz holds the moqlite fuzz targets; `make fuzz` runs each.
package fuzz
