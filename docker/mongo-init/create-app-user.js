// Run by the mongo image on the first start (an empty data volume), before authentication is on:
// the service's own user, who reads and writes its database and the rate-limit counters, nothing else.
db.getSiblingDB("admin").createUser({
  user: process.env.MONGO_APP_USERNAME,
  pwd: process.env.MONGO_APP_PASSWORD,
  roles: [
    { role: "readWrite", db: "telegram_marketing" },
    { role: "readWrite", db: "limits" },
  ],
});
