package wire

// Param is one SETUP parameter: even IDs carry a varint (Value), odd IDs
// bytes (Bytes), as the IETF draft-14 SETUP that moq-lite-02 borrows.
type Param struct {
	ID    uint64
	Value uint64
	Bytes []byte
}

// ClientSetup is CLIENT_SETUP: the versions offered, best first.
type ClientSetup struct {
	Versions []Version
	Params   []Param
}

// ServerSetup is SERVER_SETUP: the version chosen.
type ServerSetup struct {
	Version Version
	Params  []Param
}

func appendParams(dst []byte, ps []Param) []byte {
	dst = AppendVarint(dst, uint64(len(ps)))
	for _, p := range ps {
		dst = AppendVarint(dst, p.ID)
		if p.ID%2 == 0 {
			dst = AppendVarint(dst, p.Value)
		} else {
			dst = AppendVarint(dst, uint64(len(p.Bytes)))
			dst = append(dst, p.Bytes...)
		}
	}
	return dst
}

func parseParams(d *decoder) []Param {
	n := d.count("SETUP parameter count", MaxParams)
	ps := make([]Param, 0, n)
	for range n {
		p := Param{ID: d.varint("SETUP parameter id")}
		if p.ID%2 == 0 {
			p.Value = d.varint("SETUP parameter value")
		} else {
			p.Bytes = d.bytes("SETUP parameter bytes", d.varint("SETUP parameter length"))
		}
		if d.err != nil {
			return nil
		}
		for _, q := range ps {
			if q.ID == p.ID {
				d.fail(violation("SETUP parameter %d repeated", p.ID))
				return nil
			}
		}
		ps = append(ps, p)
	}
	return ps
}

// AppendClientSetup appends the body of CLIENT_SETUP.
func AppendClientSetup(dst []byte, m ClientSetup) []byte {
	dst = AppendVarint(dst, uint64(len(m.Versions)))
	for _, v := range m.Versions {
		dst = AppendVarint(dst, uint64(v))
	}
	return appendParams(dst, m.Params)
}

// ParseClientSetup decodes the body of CLIENT_SETUP.
func ParseClientSetup(b []byte) (ClientSetup, error) {
	d := decoder{b: b}
	n := d.count("CLIENT_SETUP version count", MaxVersions)
	m := ClientSetup{Versions: make([]Version, 0, n)}
	for range n {
		m.Versions = append(m.Versions, Version(d.varint("CLIENT_SETUP version")))
	}
	m.Params = parseParams(&d)
	return m, d.finish("CLIENT_SETUP")
}

// AppendServerSetup appends the body of SERVER_SETUP.
func AppendServerSetup(dst []byte, m ServerSetup) []byte {
	dst = AppendVarint(dst, uint64(m.Version))
	return appendParams(dst, m.Params)
}

// ParseServerSetup decodes the body of SERVER_SETUP.
func ParseServerSetup(b []byte) (ServerSetup, error) {
	d := decoder{b: b}
	m := ServerSetup{Version: Version(d.varint("SERVER_SETUP version"))}
	m.Params = parseParams(&d)
	return m, d.finish("SERVER_SETUP")
}

// SessionInfo is SESSION_INFO (lite-02), sent on the SETUP stream.
type SessionInfo struct{ Bitrate uint64 }

// AppendSessionInfo appends the body of SESSION_INFO.
func AppendSessionInfo(dst []byte, m SessionInfo) []byte { return AppendVarint(dst, m.Bitrate) }

// ParseSessionInfo decodes the body of SESSION_INFO.
func ParseSessionInfo(b []byte) (SessionInfo, error) {
	d := decoder{b: b}
	m := SessionInfo{Bitrate: d.varint("SESSION_INFO bitrate")}
	return m, d.finish("SESSION_INFO")
}
