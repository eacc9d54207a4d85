"""Small pieces every step shares: atomic writes, logging into the rule's log, device choice."""
