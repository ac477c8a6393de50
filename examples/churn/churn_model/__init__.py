"""The customer-churn example: a data generator and a training function for skylift."""
