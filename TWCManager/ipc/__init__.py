"""The SysV message queue of the original's PHP pages: wire format (`wire`), the command table
(`commands`), the status renderings (`status`) and the daemon's server thread (`server`)."""
