# Included by nginx-proxy inside the server block it generates for toot.example.com.
client_max_body_size 100m;
