"""The home's decisions: settings, the charging policy, green tracking and the per-tick site
step that ties them to the latest readings. Pure: no I/O, time passed in."""
