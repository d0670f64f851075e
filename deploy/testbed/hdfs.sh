#!/usr/bin/env bash
# HDFS 2.7.3 on one node: a NameNode on hdfs://127.0.0.1:18020 and one DataNode,
# run from the Hadoop jars that the PyPI source distribution of pyspark 2.4.8 bundles
# (Debian ships no Hadoop), under the system OpenJDK. Permissions off, replication 1.
TB_NAME=hdfs
source "$(dirname "$0")/lib.sh"

NN_PORT=${HDFS_NAMENODE_PORT:-18020}
NN_HTTP_PORT=19870
DN_PORT=19866
DN_HTTP_PORT=19864
DN_IPC_PORT=19867
HADOOP_DIR="$STRATA_TESTBED_HOME/hadoop-2.7.3"

tb_install() {
  command -v java >/dev/null || tb_apt openjdk-17-jre-headless
  tb_apt curl
  [ -f "$HADOOP_DIR/jars/hadoop-hdfs-2.7.3.jar" ] && return 0
  local venv dl; venv=$(tb_venv); dl="$STRATA_TESTBED_HOME/download"
  tb_pip setuptools wheel
  mkdir -p "$dl" "$HADOOP_DIR"
  if [ ! -f "$dl/pyspark-2.4.8.tar.gz" ]; then
    tb_log "pip download pyspark==2.4.8 (sdist, ~220 MB, for its Hadoop jars)"
    "$venv/bin/pip" download -q --no-deps --no-build-isolation --no-binary :all: -d "$dl" pyspark==2.4.8 \
      || tb_die "pip download pyspark==2.4.8 failed"
  fi
  tar -xzf "$dl/pyspark-2.4.8.tar.gz" -C "$HADOOP_DIR" --strip-components=2 pyspark-2.4.8/deps/jars \
    || tb_die "pyspark-2.4.8.tar.gz holds no deps/jars"
  [ -f "$HADOOP_DIR/jars/hadoop-hdfs-2.7.3.jar" ] || tb_die "hadoop-hdfs-2.7.3.jar missing from the pyspark sdist"
  # The NameNode and DataNode HTTP servers look for their webapps on the classpath.
  for app in hdfs datanode secondary; do
    mkdir -p "$HADOOP_DIR/webapps/webapps/$app/WEB-INF"
    printf '<web-app xmlns="http://java.sun.com/xml/ns/javaee" version="2.5"/>\n' \
      >"$HADOOP_DIR/webapps/webapps/$app/WEB-INF/web.xml"
  done
  rm -f "$dl/pyspark-2.4.8.tar.gz"
}

site_xml() {
  printf '<?xml version="1.0"?>\n<configuration>\n'
  while [ $# -gt 0 ]; do
    printf '  <property><name>%s</name><value>%s</value></property>\n' "$1" "$2"
    shift 2
  done
  printf '</configuration>\n'
}

tb_start() {
  local state; state=$(tb_state)
  [ -f "$state/pids" ] && tb_stop_recorded
  rm -rf "$state"; mkdir -p "$state/conf" "$state/name" "$state/data"
  for port in $NN_PORT $NN_HTTP_PORT $DN_PORT $DN_HTTP_PORT $DN_IPC_PORT; do tb_port_free "$port"; done
  site_xml fs.defaultFS "hdfs://127.0.0.1:$NN_PORT" hadoop.tmp.dir "$state/tmp" >"$state/conf/core-site.xml"
  site_xml \
    dfs.namenode.name.dir "file://$state/name" \
    dfs.datanode.data.dir "file://$state/data" \
    dfs.replication 1 \
    dfs.permissions.enabled false \
    dfs.webhdfs.enabled false \
    dfs.namenode.acls.enabled true \
    dfs.namenode.rpc-address "127.0.0.1:$NN_PORT" \
    dfs.namenode.http-address "127.0.0.1:$NN_HTTP_PORT" \
    dfs.namenode.secondary.http-address "127.0.0.1:0" \
    dfs.datanode.address "127.0.0.1:$DN_PORT" \
    dfs.datanode.http.address "127.0.0.1:$DN_HTTP_PORT" \
    dfs.datanode.ipc.address "127.0.0.1:$DN_IPC_PORT" \
    dfs.datanode.hostname 127.0.0.1 \
    dfs.namenode.safemode.extension 0 \
    dfs.namenode.datanode.registration.ip-hostname-check false \
    >"$state/conf/hdfs-site.xml"
  cat >"$state/conf/log4j.properties" <<'LOG'
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d %p %c{1}: %m%n
LOG
  local cp="$state/conf:$HADOOP_DIR/webapps:$HADOOP_DIR/jars/*"
  local jvm=(java -Xmx256m -XX:+UseSerialGC -Djava.net.preferIPv4Stack=true -cp "$cp")

  "${jvm[@]}" org.apache.hadoop.hdfs.server.namenode.NameNode -format -nonInteractive \
    >"$state/format.log" 2>&1 || tb_die "formatting the NameNode failed: $(tail -n 5 "$state/format.log")"
  tb_spawn namenode "${jvm[@]}" org.apache.hadoop.hdfs.server.namenode.NameNode
  tb_spawn datanode "${jvm[@]}" org.apache.hadoop.hdfs.server.datanode.DataNode
  tb_wait_port 127.0.0.1 "$NN_PORT" 60 NameNode

  # Writes fail until the DataNode has registered and left safe mode behind.
  local deadline=$((SECONDS + 60)) jmx="http://127.0.0.1:$NN_HTTP_PORT/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState"
  until curl -s "$jmx" | grep -q '"NumLiveDataNodes" : 1'; do
    [ $SECONDS -ge $deadline ] && tb_die "the DataNode did not register within 60s (logs: $state/namenode.log, $state/datanode.log)"
    sleep 0.3
  done
  tb_write_env <<ENV
HDFS_NAME_NODE=hdfs://127.0.0.1:$NN_PORT
ENV
}

tb_stop() { tb_stop_recorded; }

tb_main "$@"
