package httpapi

import "github.com/labstack/echo/v4"

// Routes returns the server's routes, for tests that walk every route.
func (s *Server) Routes() []*echo.Route { return s.echo.Routes() }
