"""Built-in plugins (``default_*``) and the plugin host; see enclave.plugins.host."""
