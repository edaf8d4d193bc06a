namespace pwrcell::fleet {}
