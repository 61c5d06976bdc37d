127.0.1.1	{{ container.name }}
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
