namespace pwrcell::config {}
