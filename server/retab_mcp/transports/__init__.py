"""How clients reach the server: stdio, and streamable HTTP or SSE with the bounds that keep it serving."""
