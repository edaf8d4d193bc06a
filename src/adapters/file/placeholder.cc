namespace pwrcell::adapters {}
