package httpapi

import (
	"net"
	"strings"
	"unicode"

	"github.com/labstack/echo/v4"
)

// maxUserAgent bounds the User-Agent kept on events and request records.
const maxUserAgent = 256

// clientUserAgent returns the request's User-Agent, cut to maxUserAgent bytes of printable
// text (it becomes a NATS header, which cannot hold line breaks).
func clientUserAgent(c echo.Context) string {
	ua := strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, c.Request().UserAgent())
	ua = strings.TrimSpace(ua)
	if len(ua) > maxUserAgent {
		ua = strings.ToValidUTF8(ua[:maxUserAgent], "")
	}
	return ua
}

// clientSource returns the address the request came from: the TCP peer, or what echo's
// IPExtractor says when one is configured for a trusted proxy. X-Forwarded-For alone is never
// believed: anyone can send it.
func (s *Server) clientSource(c echo.Context) string {
	if s.echo.IPExtractor != nil {
		return s.echo.IPExtractor(c.Request())
	}
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if err != nil {
		return c.Request().RemoteAddr
	}
	return host
}
