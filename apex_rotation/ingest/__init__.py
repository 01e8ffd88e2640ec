"""Market-data sources behind one interface (`MarketDataSource`) and the one cleaning function."""
